#!/usr/bin/env python3
"""Reference outputs of the `imagecorruptions` package (1.1.2, ImageNet-C constants) for rws's tests.

Not needed at test time: the PNGs it writes are committed under tests/data/corruptions/.
Regenerate with:

    pip install imagecorruptions==1.1.2 numpy scipy scikit-image opencv-python-headless Pillow
    python3 scripts/make_corruption_refs.py tests/data/corruptions

Inputs are natural photos that ship in scikit-image (astronaut, coffee), resized to 128x128 with
PIL's Lanczos filter and saved as input_*.png, so the Rust side corrupts exactly the same pixels.
Outputs are ref_<corruption>_s<severity>.png (uint8, as imagecorruptions returns them), seeded
with numpy seed 1000*severity + corruption index.

imagecorruptions 1.1.2 predates numpy 2 and current scikit-image; three shims make it run
unchanged: np.float_ (removed in numpy 2), gaussian(..., multichannel=True) (renamed
channel_axis), and pkg_resources.resource_filename (setuptools no longer ships it by default).
"""
import os
import sys
import types

import numpy as np

# --- compatibility shims, applied before imagecorruptions is imported ---------------------------
if not hasattr(np, "float_"):
    np.float_ = np.float64

import skimage.filters  # noqa: E402

_gaussian = skimage.filters.gaussian


def _gaussian_compat(image, *args, multichannel=None, **kwargs):
    if multichannel:
        kwargs.setdefault("channel_axis", -1)
    return _gaussian(image, *args, **kwargs)


skimage.filters.gaussian = _gaussian_compat

try:
    import pkg_resources  # noqa: F401
except ImportError:
    shim = types.ModuleType("pkg_resources")

    def resource_filename(package, name):
        mod = sys.modules[package]
        return os.path.join(os.path.dirname(mod.__file__), name)

    shim.resource_filename = resource_filename
    sys.modules["pkg_resources"] = shim

from PIL import Image  # noqa: E402
import skimage.data  # noqa: E402
from imagecorruptions import corrupt, get_corruption_names  # noqa: E402

SIZE = 128
SEVERITIES = (1, 3, 5)


def load_inputs():
    photos = {"astronaut": skimage.data.astronaut(), "coffee": skimage.data.coffee()}
    out = {}
    for name, arr in photos.items():
        h, w = arr.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        crop = Image.fromarray(arr[top:top + side, left:left + side])
        out[name] = np.array(crop.resize((SIZE, SIZE), Image.LANCZOS))
    return out


def main(outdir):
    os.makedirs(outdir, exist_ok=True)
    inputs = load_inputs()
    for name, img in inputs.items():
        Image.fromarray(img).save(os.path.join(outdir, f"input_{name}.png"))
    names = get_corruption_names("all")
    assert len(names) == 19, names
    for index, corruption in enumerate(names):
        for severity in SEVERITIES:
            for photo in ("astronaut", "coffee"):
                np.random.seed(1000 * severity + index)
                out = corrupt(inputs[photo], corruption_name=corruption, severity=severity)
                out = np.uint8(np.asarray(out))
                path = os.path.join(outdir, f"ref_{photo}_{corruption}_s{severity}.png")
                Image.fromarray(out).save(path, optimize=True)
        print(corruption, "done")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/corruptions")
