"""Prints the iteration a training state (safetensors from `train fit`) reached; 0 when the
file does not exist. Usage: python3 scripts/state-iteration.py STATE"""
import json
import struct
import sys

try:
    with open(sys.argv[1], "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        print(json.loads(f.read(n))["__metadata__"]["iteration"])
except FileNotFoundError:
    print(0)
