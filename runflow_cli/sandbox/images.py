"""Source images and the four stage operations, done for real with Pillow.

Synthetic sources (host ``cdn.example.com``) are drawn so that every stage has
something visible to do: a near-white studio background with a slight gradient,
a product (T-shirt, shoe or bag) in a colour picked from the URL, a small tag in
the ``TAG_MARKER`` colour and a "model" figure in the ``FIGURE_MARKER`` colour.
The stages find those markers by colour, so the work is cheap but genuine:
painted-out pixels, a real crop, a real alpha channel.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import io
import math
import random
from fractions import Fraction
from urllib.parse import urlsplit

from PIL import Image, ImageChops, ImageDraw

from .settings import ELEMENTS, STAGE_PREFIXES

TAG_MARKER = (255, 0, 200)
FIGURE_MARKER = (226, 170, 110)
MARKER_TOLERANCE = 12
BACKGROUND_TOLERANCE = 24
SYNTHETIC_HOST = "cdn.example.com"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_SOURCE_SIDE = 2048
MAX_CANVAS_SIDE = 8192
PHOTO_QUALITY = 10
"""WebP quality of photo-sized finals: low, so 4,096 px finals stay ~50-75 KB on disk."""
PHOTO_ASPECT_DENOMINATOR = 16
"""A photo-sized final's shape is the nearest ratio with at most this denominator (1:1,
4:5, 9:16 exactly), so only a few dozen distinct shapes are ever encoded."""

RGB = tuple[int, int, int]


class ItemError(Exception):
    """An item cannot be processed; ``kind`` is what the API reports (``fetch_failed``...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def is_synthetic(url: str) -> bool:
    """True for a source the sandbox draws itself (``https://cdn.example.com/<path>``)."""
    return (urlsplit(url).hostname or "").lower() == SYNTHETIC_HOST


def load_source(url: str, size: int) -> Image.Image:
    """The RGB source image behind ``url``, or ``ItemError`` saying why there is none."""
    host = (urlsplit(url).hostname or "").lower()
    if is_synthetic(url):
        return synthesize(urlsplit(url).path, size)
    if host not in LOOPBACK_HOSTS:
        raise ItemError(
            "fetch_failed", "could not fetch source image: host not reachable from the sandbox"
        )
    import httpx  # only loopback sources need it

    try:
        response = httpx.get(url, timeout=10.0, follow_redirects=True, trust_env=False)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ItemError("fetch_failed", f"could not fetch source image: {exc}") from exc
    return decode(response.content)


def decode(data: bytes) -> Image.Image:
    """Bytes -> RGB image (downscaled if huge), or ``ItemError('invalid_image')``."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # Pillow raises a zoo of types for bad input
        raise ItemError("invalid_image", f"source image could not be decoded: {exc}") from exc
    image = image.convert("RGB")
    image.thumbnail((MAX_SOURCE_SIDE, MAX_SOURCE_SIDE))
    return image


def _product_colour(rng: random.Random) -> RGB:
    while True:
        r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.55, 0.9), rng.uniform(0.3, 0.7))
        colour = (round(r * 255), round(g * 255), round(b * 255))
        # A product that happens to look like a marker would be painted out.
        if all(_distance(colour, m) > 60 for m in (TAG_MARKER, FIGURE_MARKER)):
            return colour


def _distance(a: RGB, b: RGB) -> int:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def synthesize(path: str, size: int) -> Image.Image:
    """A deterministic studio shot for ``path``: same path, same pixels."""
    seed = int.from_bytes(hashlib.sha256(path.encode()).digest(), "big")
    rng = random.Random(seed)
    s = size
    top, bottom = (248, 247, 245), (232, 231, 228)
    gradient = Image.linear_gradient("L").resize((s, s))
    image = Image.composite(
        Image.new("RGB", (s, s), bottom), Image.new("RGB", (s, s), top), gradient
    )
    draw = ImageDraw.Draw(image)

    # The figure stands behind the product, slightly to the left.
    fx = s * rng.uniform(0.26, 0.34)
    head = s * 0.07
    draw.ellipse((fx - head, s * 0.11, fx + head, s * 0.11 + 2 * head), fill=FIGURE_MARKER)
    draw.rectangle((fx - s * 0.1, s * 0.27, fx + s * 0.1, s * 0.88), fill=FIGURE_MARKER)

    colour = _product_colour(rng)
    kind = ("shirt", "shoe", "bag")[seed % 3]
    x0, y0 = s * rng.uniform(0.36, 0.42), s * rng.uniform(0.36, 0.42)
    w, h = s * 0.42, s * 0.42
    if kind == "shirt":
        pts = [(0.35, 0), (0.65, 0), (1, 0.18), (0.88, 0.38), (0.78, 0.3), (0.78, 1),
               (0.22, 1), (0.22, 0.3), (0.12, 0.38), (0, 0.18)]  # fmt: skip
        draw.polygon([(x0 + px * w, y0 + py * h) for px, py in pts], fill=colour)
        tag = (x0 + 0.46 * w, y0, x0 + 0.54 * w, y0 + 0.12 * h)
    elif kind == "shoe":
        pts = [(0, 0.35), (0.35, 0.3), (0.55, 0.55), (1, 0.7), (1, 0.95), (0, 0.95)]
        draw.polygon([(x0 + px * w, y0 + py * h) for px, py in pts], fill=colour)
        tag = (x0 + 0.05 * w, y0 + 0.4 * h, x0 + 0.13 * w, y0 + 0.52 * h)
    else:
        draw.rectangle((x0, y0 + 0.3 * h, x0 + w, y0 + h), fill=colour)
        draw.arc((x0 + 0.2 * w, y0, x0 + 0.8 * w, y0 + 0.6 * h), 180, 360, fill=colour,
                 width=max(2, s // 48))  # fmt: skip
        tag = (x0 + 0.82 * w, y0 + 0.36 * h, x0 + 0.92 * w, y0 + 0.5 * h)
    draw.rectangle(tag, fill=TAG_MARKER)
    return image


def _pixels(image: Image.Image) -> list[RGB]:
    # Pillow 12 renamed getdata(); keep working on both sides of the rename.
    flat = getattr(image, "get_flattened_data", None)
    return list(flat() if flat is not None else image.getdata())


def background_colour(image: Image.Image) -> RGB:
    """The median colour of the border pixels: what the studio backdrop looks like."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    strips = [(0, 0, w, 1), (0, h - 1, w, h), (0, 0, 1, h), (w - 1, 0, w, h)]
    pixels = [p for box in strips for p in _pixels(rgb.crop(box))]
    channels = zip(*pixels, strict=True)
    return tuple(sorted(c)[len(pixels) // 2] for c in channels)  # type: ignore[return-value]


def _channel_diffs(image: Image.Image, colour: RGB) -> list[Image.Image]:
    solid = Image.new("RGB", image.size, colour)
    return list(ImageChops.difference(image.convert("RGB"), solid).split())


def near_mask(image: Image.Image, colour: RGB, tolerance: int) -> Image.Image:
    """L mask, 255 where every channel is within ``tolerance`` of ``colour``."""
    r, g, b = (
        c.point(lambda v: 255 if v <= tolerance else 0) for c in _channel_diffs(image, colour)
    )
    return ImageChops.multiply(ImageChops.multiply(r, g), b)


def far_mask(image: Image.Image, colour: RGB, tolerance: int) -> Image.Image:
    """L mask, 255 where some channel differs from ``colour`` by more than ``tolerance``."""
    r, g, b = _channel_diffs(image, colour)
    return ImageChops.lighter(ImageChops.lighter(r, g), b).point(
        lambda v: 255 if v > tolerance else 0
    )


def _surrounding_colour(image: Image.Image, mask: Image.Image, backdrop: RGB) -> RGB:
    """The commonest non-backdrop colour just around the masked area (what it covers)."""
    box = mask.getbbox()
    if box is None:
        return backdrop
    pad = max(3, image.width // 64)
    x0, y0, x1, y1 = box
    around = image.crop((max(0, x0 - pad), max(0, y0 - pad), x1 + pad, y1 + pad))
    counts = around.getcolors(around.width * around.height) or []
    for _, colour in sorted(counts, reverse=True):
        if (
            _distance(colour, backdrop) > BACKGROUND_TOLERANCE
            and _distance(colour, TAG_MARKER) > 60
        ):
            return colour
    return backdrop


def remove_model(image: Image.Image) -> Image.Image:
    """Paint the figure out with the backdrop colour (it stands behind the product)."""
    out = image.convert("RGB")
    mask = near_mask(out, FIGURE_MARKER, MARKER_TOLERANCE)
    out.paste(background_colour(out), (0, 0, *out.size), mask)
    return out


def remove_tag(image: Image.Image) -> Image.Image:
    """Paint the tag out with the product colour around it, so no hole is left."""
    out = image.convert("RGB")
    mask = near_mask(out, TAG_MARKER, MARKER_TOLERANCE)
    fill = _surrounding_colour(out, mask, background_colour(out))
    out.paste(fill, (0, 0, *out.size), mask)
    return out


def isolate_product(image: Image.Image) -> Image.Image:
    """Crop to everything that is not backdrop, plus a small margin."""
    box = far_mask(image, background_colour(image), BACKGROUND_TOLERANCE).getbbox()
    if box is None:
        return image.copy()
    margin = max(2, round(max(image.size) * 0.03))
    x0, y0, x1, y1 = box
    w, h = image.size
    return image.crop(
        (max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), min(h, y1 + margin))
    )


def remove_background(image: Image.Image) -> Image.Image:
    """RGBA with alpha 0 wherever the pixel is (close to) the backdrop colour."""
    alpha = far_mask(image, background_colour(image), BACKGROUND_TOLERANCE)
    out = image.convert("RGBA")
    out.putalpha(alpha)
    return out


STAGES = {
    "model_removal": remove_model,
    "tag_removal": remove_tag,
    "product_isolation": isolate_product,
    "background_removal": remove_background,
}


def pad_to_ratio(image: Image.Image, ratio: str) -> Image.Image:
    """Centre ``image`` on a canvas of aspect ``W:H``: transparent if RGBA, else backdrop."""
    rw, rh = (int(part) for part in ratio.split(":"))
    w, h = image.size
    # Smallest whole multiple of W:H that holds the image: the ratio comes out exact.
    k = max(math.ceil(w / rw), math.ceil(h / rh))
    size = (k * rw, k * rh)
    if max(size) > MAX_CANVAS_SIDE:
        too_big = f"aspect ratio {ratio} needs a {size[0]}x{size[1]} canvas"
        raise ItemError("upstream_failed", too_big)
    if size == (w, h):
        return image
    fill = (0, 0, 0, 0) if image.mode == "RGBA" else background_colour(image)
    canvas = Image.new(image.mode, size, fill)
    canvas.paste(image, ((size[0] - w) // 2, (size[1] - h) // 2))
    return canvas


def encode_webp(image: Image.Image) -> bytes:
    """WebP bytes; method 0 because the sandbox favours speed over file size."""
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=80, method=0)
    return buffer.getvalue()


def photo_dimensions(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` scaled so its longer side is ``side``, its shape rounded to the nearest
    ratio with a denominator of at most ``PHOTO_ASPECT_DENOMINATOR``."""
    w, h = size
    shape = Fraction(min(w, h), max(w, h)).limit_denominator(PHOTO_ASPECT_DENOMINATOR)
    other = max(1, round(side * shape))
    return (side, other) if w >= h else (other, side)


def encode_photo(image: Image.Image, side: int) -> bytes:
    """A photo-sized final standing in for ``image``: same mode and shape, ``side`` px on
    its longer side, lightly textured so it stays small on disk.

    Encoding 16 megapixels takes about a second, so the pixels depend only on the mode
    and the dimensions and each shape is encoded once (cached): what a client does with
    a final (download, decode, scale) depends on its size, not on what it shows.
    """
    return _photo(image.mode if image.mode == "RGBA" else "RGB", photo_dimensions(image.size, side))


@functools.lru_cache(maxsize=16)
def _photo(mode: str, size: tuple[int, int]) -> bytes:
    w, h = size
    gradient = Image.linear_gradient("L").resize(size)
    image = Image.composite(
        Image.new("RGB", size, (232, 231, 228)), Image.new("RGB", size, (248, 247, 245)), gradient
    )
    product = (w * 0.3, h * 0.25, w * 0.7, h * 0.8)
    ImageDraw.Draw(image).rectangle(product, fill=(118, 64, 92))
    if mode == "RGBA":
        alpha = Image.new("L", size, 0)
        ImageDraw.Draw(alpha).rectangle(product, fill=255)
        image.putalpha(alpha)
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=PHOTO_QUALITY, method=0)
    return buffer.getvalue()


Rendered = tuple[tuple[str, bytes], ...]
"""An item's output files, in order: (file name, WebP bytes); the final is last."""


def render(
    image: Image.Image, elements: tuple[str, ...], aspect_ratio: str | None, final_size: int | None
) -> Rendered:
    """Run the stages in their fixed order on ``image``; every stage's file, then the final."""
    files = []
    for element in ELEMENTS:
        if element in elements:
            image = STAGES[element](image)
            files.append((f"{STAGE_PREFIXES[element]}_00001_.webp", encode_webp(image)))
    if aspect_ratio:
        image = pad_to_ratio(image, aspect_ratio)
    final = encode_webp(image) if final_size is None else encode_photo(image, final_size)
    files.append(("result_00001_.webp", final))
    return tuple(files)


@functools.lru_cache(maxsize=256)
def render_synthetic(
    path: str,
    elements: tuple[str, ...],
    aspect_ratio: str | None,
    size: int,
    final_size: int | None,
) -> Rendered:
    """:func:`render` of the synthetic source at ``path``: the same arguments give the same
    bytes, so a catalog that shows one photo under many URLs (``?v=1``, ``?v=2``) costs the
    sandbox's CPU once, however many items it has."""
    return render(synthesize(path, size), elements, aspect_ratio, final_size)
