#!/usr/bin/python3
"""Writes demo inputs for the skip-counting transformer: arg0 = 512 sequences [512, 11] (int64).

Usage: /usr/bin/python3 make_demo_inputs.py OUT.safetensors
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "python"))
import stio  # noqa: E402
from make_demo_model import SEQ, make_batch  # noqa: E402

batch = make_batch(512, torch.Generator().manual_seed(3))[:, : SEQ - 1]
stio.save(sys.argv[1], {"arg0": batch})
