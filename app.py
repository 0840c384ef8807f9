"""retinagan web app (Gradio). UI wiring only: models run behind retinagan.inference.

python app.py [--host 127.0.0.1] [--port 7860] [--share]
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from retinagan.cli import DEFAULT_SEGMENTER  # noqa: E402
from retinagan.data.imageio import read_rgb  # noqa: E402
from retinagan.errors import RetinaganError  # noqa: E402
from retinagan.visual import overlay  # noqa: E402

MAX_UPLOAD = "40mb"
_models: dict = {}


def segmenter():
    if "segmenter" not in _models:
        from retinagan.inference import Segmenter

        _models["segmenter"] = Segmenter.load(DEFAULT_SEGMENTER)
    return _models["segmenter"]


def segment_upload(path: str | None):
    """Upload callback: (photo, vessel map, overlay, message). Bad input -> message, no crash."""
    if not path:
        return None, None, None, "Upload a fundus photo, or click *Try skimage's retina photo*."
    try:
        rgb = read_rgb(path, name=os.path.basename(path))
        vessels = segmenter().segment(rgb)
    except RetinaganError as exc:
        return None, None, None, f"**Could not use this file:** {exc}"
    share = vessels.mean() * 100
    return rgb, vessels.astype(np.uint8) * 255, overlay(rgb, vessels), f"{rgb.shape[1]}x{rgb.shape[0]} photo, vessels cover {share:.1f}% of it."


def example_photo_path() -> str:
    """skimage's bundled retina photo, saved once to a temp file so it travels like an upload."""
    import tempfile

    from PIL import Image
    from skimage import data

    path = os.path.join(tempfile.gettempdir(), "retinagan-skimage-retina.png")
    if not os.path.exists(path):
        Image.fromarray(data.retina()).save(path)
    return path


def build_ui() -> gr.Blocks:
    with gr.Blocks(title="retinagan") as demo:
        gr.Markdown(
            "# retinagan\nControlled generation of diabetic-retinopathy fundus images. "
            "This build ships the **vessel segmenter** (stage 0 of the pipeline); the generators arrive with later releases."
        )
        with gr.Tab("Segment vessels"):
            with gr.Row():
                upload = gr.File(label="Fundus photo", file_types=["image"], type="filepath")
                with gr.Column():
                    example = gr.Button("Try skimage's retina photo")
                    message = gr.Markdown()
            with gr.Row():
                photo = gr.Image(label="Photo", interactive=False)
                vessels = gr.Image(label="Vessel map", interactive=False, image_mode="L")
                combined = gr.Image(label="Overlay", interactive=False)
            outputs = [photo, vessels, combined, message]
            upload.change(segment_upload, upload, outputs, api_name="segment")
            example.click(lambda: segment_upload(example_photo_path()), None, outputs, api_name="segment_example")
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description="retinagan web app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public share link")
    args = parser.parse_args()
    build_ui().queue().launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size=MAX_UPLOAD)


if __name__ == "__main__":
    main()
