"""The reference loop of bench_corrupt.py: what a user writes to make an ImageNet-C copy of a
dataset's frames with imagecorruptions (imagecorruptions-imaug 1.1.5), one process.

    python benchmarks/reference/corrupt_loop.py DATASET CORRUPTION SEVERITY SEEDS.json OUT_DIR

For each frame (videos.parquet order): cv2.imread, BGR->RGB, np.random.seed(the frame's seed, from
SEEDS.json: the seeds ``rvoskit corrupt --rng legacy`` uses, so the outputs can be compared), then
imagecorruptions.corrupt, RGB->BGR, cv2.imwrite PNG (OpenCV's defaults) to OUT_DIR/<video>/<frame>.png.
"""

import json
import os
import sys
import warnings

import cv2
import numpy as np
import pandas as pd
from imagecorruptions import corrupt

warnings.simplefilter("ignore")
ds, name, severity, seeds_file, out = sys.argv[1:6]
manifest = json.load(open(os.path.join(ds, "dataset.json")))
root = manifest["frame_root"] if os.path.isabs(manifest["frame_root"]) else os.path.join(ds, manifest["frame_root"])
seeds = json.load(open(seeds_file))
videos = pd.read_parquet(os.path.join(ds, "videos.parquet"))
for vid, frames, files in zip(videos["video_id"], videos["frames"], videos["frame_files"]):
    os.makedirs(os.path.join(out, vid), exist_ok=True)
    for t, (f, rel) in enumerate(zip(frames, files)):
        img = cv2.cvtColor(cv2.imread(os.path.join(root, rel)), cv2.COLOR_BGR2RGB)
        np.random.seed(seeds[vid][t])
        y = corrupt(img, int(severity), name)
        cv2.imwrite(os.path.join(out, vid, f"{f}.png"), cv2.cvtColor(np.uint8(y), cv2.COLOR_RGB2BGR))
