"""The bundle's backbone on onnxruntime (CPU): files or bytes in, L2-normalised features out.

Pixels come from ``sslstudio.imaging.decode.decode_resized(path, S, square=True)``, the function the
training cache used, so a training image embeds to its own bundled row. Decoding (Pillow
releases the GIL) runs on a few threads one batch ahead of the runtime; a file that does not
decode is reported and skipped, never the end of a folder run.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sslstudio.imaging.decode import DecodeError, decode_resized, is_ignored_name, sniff_format
from sslstudio.tool.bundle import Bundle, Classifier


class ToolError(Exception):
    """A request the tool cannot do (no classifier, no readable images); printed, not raised."""


class NotAnImage(ToolError):
    """Uploaded bytes that no image decoder recognises (the server answers 415)."""


@dataclass
class Embedded:
    features: np.ndarray  # (N, D) float32
    paths: list[str]  # the files that decoded, in input order
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def list_images(
    folder: str | os.PathLike[str], skipped_folders: list[tuple[str, str]] | None = None
) -> list[str]:
    """Files under ``folder`` (or the file itself), sorted, OS junk left out; not yet decoded.

    Links to folders are not followed and unreadable folders cannot be listed: each is added
    to ``skipped_folders`` as (path, reason), so a caller can say what it did not look at.
    """
    root = Path(folder)
    if root.is_file():
        return [str(root)]
    if not root.is_dir():
        raise ToolError(f"{root}: no such file or folder")
    found: list[str] = []
    passed = skipped_folders if skipped_folders is not None else []

    def unreadable(e: OSError) -> None:
        passed.append((str(e.filename), f"unreadable folder ({type(e).__name__})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not is_ignored_name(d))
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                passed.append((os.path.join(dirpath, d), "a link to a folder: not followed"))
        found += [os.path.join(dirpath, f) for f in sorted(filenames) if not is_ignored_name(f)]
    passed.sort()
    return found


def skipped_summary(skipped: Sequence[tuple[str, str]], total: int) -> str:
    """'3 of 10 files skipped (2 not an image, 1 truncated)'."""
    from sslstudio.imaging.decode import reason_category

    counts: dict[str, int] = {}
    for _, reason in skipped:
        counts[reason_category(reason)] = counts.get(reason_category(reason), 0) + 1
    detail = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"{len(skipped)} of {total} files skipped ({detail})"


class Model:
    """One onnxruntime session (thread-safe for ``run``) plus the bundle's input recipe."""

    def __init__(
        self, bundle: Bundle, *, threads: int = 0, batch_size: int = 32, decode_threads: int = 0
    ) -> None:
        import onnxruntime as ort  # here, not at import: `--help` and bundle checks stay fast

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(0, threads)  # 0: onnxruntime picks (physical cores)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # warnings about unused initialisers are noise to users
        if bundle.onnx_weights:  # the model's weights live in the bundle's safetensors file
            names = list(bundle.onnx_weights)
            values = [
                ort.OrtValue.ortvalue_from_numpy(np.array(bundle.onnx_weights[n])) for n in names
            ]
            opts.add_external_initializers(names, values)
        try:
            self.session = ort.InferenceSession(
                bundle.onnx_model, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime's own exception types differ between versions
            raise ToolError(f"{bundle.source}: onnxruntime cannot load the model ({e})") from e
        out = self.session.get_outputs()
        names = [o.name for o in out]
        width = next((o.shape[-1] for o in out if o.name == bundle.onnx_output), None)
        if bundle.onnx_output not in names or (isinstance(width, int) and width != bundle.dim):
            raise ToolError(
                f"{bundle.source}: the model's output {bundle.onnx_output!r} has width {width}, "
                f"the embeddings {bundle.dim}"
            )
        self.bundle = bundle
        self.size = bundle.input.size
        self.batch_size = batch_size
        self.decode_threads = decode_threads or min(4, os.cpu_count() or 1)
        spec = bundle.input
        # (x * scale - mean) / std folded into one multiply-add: x * a + b, per channel.
        self._a = (spec.scale / np.asarray(spec.std, np.float32)).astype(np.float32)
        self._b = (-np.asarray(spec.mean, np.float32) / np.asarray(spec.std, np.float32)).astype(
            np.float32
        )

    @property
    def classifier(self) -> Classifier:
        if self.bundle.classifier is None:
            raise ToolError(
                f"{self.bundle.source}: this bundle has no classifier (it was exported from a run "
                "without labels); use embed or query instead"
            )
        return self.bundle.classifier

    def pixels(self, path: str | os.PathLike[str]) -> np.ndarray:
        """(S, S, 3) uint8: the training pixels of one file (DecodeError if it has none)."""
        return decode_resized(path, self.size, square=True)

    def pixels_from_bytes(self, data: bytes) -> np.ndarray:
        """Uploaded bytes -> pixels; NotAnImage when the bytes are no image format we read."""
        if sniff_format(data[:32]) is None:
            raise NotAnImage("the upload is not an image (JPEG, PNG, TIFF, BMP, WebP or GIF)")
        # decode_resized reads a path (it stats and sniffs the file): a private temp file.
        fd, tmp = tempfile.mkstemp(prefix="sslstudio-tool-", suffix=".img")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return self.pixels(tmp)
        finally:
            os.unlink(tmp)

    def embed_pixels(self, batch: np.ndarray, *, normalise: bool = True) -> np.ndarray:
        """(N, S, S, 3) uint8 -> (N, D) float32 features, L2-normalised unless told not."""
        out = []
        for start in range(0, len(batch), self.batch_size):
            x = self.bundle.input.normalise(batch[start : start + self.batch_size])
            x = x.astype(np.float32) * self._a + self._b
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # NHWC -> NCHW
            try:
                (f,) = self.session.run([self.bundle.onnx_output], {self.bundle.onnx_input: x})
            except Exception as e:  # a graph that passed the checks yet fails when run
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ToolError(
                    f"{self.bundle.source}: the model failed in onnxruntime ({first})"
                ) from e
            f = np.asarray(f, np.float32).reshape(len(x), -1)
            if f.shape[1] != self.bundle.dim:
                raise ToolError(
                    f"the model gave {f.shape[1]} features, the bundle says {self.bundle.dim}"
                )
            out.append(f)
        features = np.concatenate(out) if out else np.zeros((0, self.bundle.dim), np.float32)
        return normalised(features) if normalise else features

    def embed_files(
        self,
        paths: Sequence[str],
        *,
        normalise: bool = True,
        on_skip: Callable[[str, str], None] | None = None,
    ) -> Embedded:
        """Features of the files that decode; the others land in ``skipped`` with a reason."""
        result = Embedded(np.zeros((0, self.bundle.dim), np.float32), [])
        chunks: list[np.ndarray] = []
        for batch_paths, decoded in self._decoded_batches(paths):
            good = []
            for p, px in zip(batch_paths, decoded):
                if isinstance(px, str):
                    result.skipped.append((p, px))
                    if on_skip:
                        on_skip(p, px)
                else:
                    good.append((p, px))
            if good:
                result.paths += [p for p, _ in good]
                pixels = np.stack([px for _, px in good])
                chunks.append(self.embed_pixels(pixels, normalise=normalise))
        if chunks:
            result.features = np.concatenate(chunks)
        return result

    def _decoded_batches(
        self, paths: Sequence[str]
    ) -> Iterator[tuple[Sequence[str], list[np.ndarray | str]]]:
        """Batches of (paths, pixels-or-reason), the next batch decoding while this one runs."""

        def one(p: str) -> np.ndarray | str:
            try:
                return self.pixels(p)
            except DecodeError as e:
                return e.reason
            except Exception as e:  # a folder run reports and goes on, whatever the file holds
                return f"unreadable ({type(e).__name__}: {e})"

        batches = [paths[i : i + self.batch_size] for i in range(0, len(paths), self.batch_size)]
        with ThreadPoolExecutor(self.decode_threads) as pool:
            pending: list[Future[np.ndarray | str]] | None = None
            for i, batch in enumerate(batches):
                if pending is None:
                    pending = [pool.submit(one, p) for p in batch]
                current = pending
                nxt = batches[i + 1] if i + 1 < len(batches) else []
                pending = [pool.submit(one, p) for p in nxt] or None
                yield batch, [f.result() for f in current]


def normalised(features: np.ndarray) -> np.ndarray:
    """Rows to unit length (an all-zero row stays zero rather than becoming NaN)."""
    norms = np.sqrt(np.einsum("nd,nd->n", features, features))[:, None]  # (N, 1)
    return (features / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
