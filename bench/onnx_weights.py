"""One copy of the weights in a bundle: sizes, and what the unfolded graph costs onnxruntime.

The exporter now writes model.onnx unoptimised (BatchNorm not folded into the convolutions) so
its initialisers are backbone.safetensors' tensors byte for byte and can live there as ONNX
external data. Side by side in one process, on the same ResNet-18: the bundle's weight files
before (folded self-contained ONNX + safetensors + torchvision copy) and now (safetensors +
a graph-only ONNX), and onnxruntime's images/s on each graph (it folds BatchNorm itself when it
loads a model; this checks it does).

    python bench/onnx_weights.py --size 32 --batch 64 --repeats 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import record  # noqa: E402
from sslstudio.config import RunConfig  # noqa: E402
from sslstudio.core.explore.embed import random_init_method  # noqa: E402
from sslstudio.core.export.formats import family_file, write_onnx  # noqa: E402


def folded_onnx(method, size: int) -> bytes:
    """The old export: dynamo with its optimiser on (BatchNorm folded), one self-contained file."""
    from sslstudio.core.export.formats import _Features

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            _Features(method).eval(),
            (torch.randn(2, 3, size, size),),
            None,
            input_names=["images"],
            output_names=["features"],
            opset_version=18,
            dynamo=True,
            external_data=False,
            dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
        )
    return program.model_proto.SerializeToString()


def images_per_s(path_or_bytes, x: np.ndarray, repeats: int) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    sess = ort.InferenceSession(path_or_bytes, opts, providers=["CPUExecutionProvider"])
    sess.run(None, {"images": x})  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        sess.run(None, {"images": x})
        best = min(best, time.perf_counter() - t)
    return len(x) / best


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "onnx_weights.json")
    args = ap.parse_args()
    cfg = RunConfig(data_root=".", backbone="resnet18", small_stem="off", image_size=args.size)
    method = random_init_method(cfg).float()
    tmp = Path(tempfile.mkdtemp(prefix="onnx-weights-"))
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in method.backbone.state_dict().items()}
    save_file(state, str(tmp / "backbone.safetensors"))
    entry = write_onnx(method, args.size, tmp / "model.onnx", tmp / "backbone.safetensors")
    old = folded_onnx(method, args.size)
    fam = family_file(method)
    save_file(fam.tensors, str(tmp / "family.safetensors"))
    mb = {
        "safetensors": (tmp / "backbone.safetensors").stat().st_size / 1e6,
        "onnx_shared": (tmp / "model.onnx").stat().st_size / 1e6,
        "onnx_folded": len(old) / 1e6,
        "torchvision_file": (tmp / "family.safetensors").stat().st_size / 1e6,
    }
    before = mb["safetensors"] + mb["onnx_folded"] + mb["torchvision_file"]
    now = mb["safetensors"] + mb["onnx_shared"]
    x = np.random.default_rng(0).standard_normal((args.batch, 3, args.size, args.size))
    x = x.astype(np.float32)
    speed_old, speed_new = [], []
    for _ in range(3):  # interleaved, so a change in the machine's load hits both alike
        speed_old.append(images_per_s(old, x, args.repeats))
        speed_new.append(images_per_s(str(tmp / "model.onnx"), x, args.repeats))
    old_s, new_s = max(speed_old), max(speed_new)
    print(f"ResNet-18, {args.size} px, batch {args.batch}, {torch.get_num_threads()} threads")
    print(f"{'':<34}{'before':>10}{'now':>10}")
    print(f"{'weight files in the bundle (MB)':<34}{before:>10.1f}{now:>10.1f}")
    print(f"{'onnxruntime images/s':<34}{old_s:>10.0f}{new_s:>10.0f}")
    print(f"bundle weights now / before {now / before:.3f}; speed now / before {new_s / old_s:.3f}")
    print(f"shared initialisers: {len(entry['weights']['initializers'])}")
    record.write(
        args.json,
        {
            "size": args.size,
            "batch": args.batch,
            "mb": mb,
            "bundle_weights_mb_before": before,
            "bundle_weights_mb_now": now,
            "images_per_s_folded": speed_old,
            "images_per_s_shared": speed_new,
            "speed_ratio_now_over_before": new_s / old_s,
            "threads": torch.get_num_threads(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
