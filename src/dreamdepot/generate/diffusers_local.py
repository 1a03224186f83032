"""Local generation with diffusers: a diffusers folder or a single ``.safetensors`` checkpoint
(with a local config folder), never fetched from the network. The pipeline stays loaded between
jobs; progress is reported per denoising step; a cancel stops at the next step.

Upscaling uses a Stable Diffusion x4 upscaler folder when one is configured, and otherwise a
Lanczos resampling fallback that says so in the image's parameters.
"""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image

from dreamdepot.generate.base import (
    BackendError,
    BackendResult,
    GeneratedImage,
    GenerateRequest,
)


def pick_device() -> tuple[str, Any]:
    """CUDA, then Apple MPS, then CPU; fp16 on a GPU, fp32 on the CPU."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.float16
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps", torch.float16
    return "cpu", torch.float32


class DiffusersBackend:
    name = "diffusers"

    def __init__(
        self,
        model: Path,
        config: Path | None = None,
        upscaler: Path | None = None,
        device: str | None = None,
    ) -> None:
        try:
            import diffusers  # noqa: F401
            import torch  # noqa: F401
        except ImportError as exc:
            raise BackendError(
                "the diffusers back end needs: pip install -c constraints.txt "
                "'dreamdepot[diffusers]'"
            ) from exc
        if not model.exists():
            raise BackendError(f"diffusers model {model} does not exist")
        self.model, self.config, self.upscaler_path = model, config, upscaler
        self.device_name = device
        self._pipe: Any = None
        self._img2img: Any = None
        self._upscaler: Any = None
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._progress = 0.0

    # -- loading (once; kept warm) ----------------------------------------------------------

    def _load(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
        from diffusers.utils import logging as dlogging

        dlogging.set_verbosity_error()
        dlogging.disable_progress_bar()
        device, dtype = pick_device()
        if self.device_name and self.device_name != "auto":
            device = self.device_name
            dtype = torch.float32 if device == "cpu" else torch.float16
        kwargs = {
            "local_files_only": True,
            "safety_checker": None,
            "requires_safety_checker": False,
            "dtype": dtype,
        }
        try:
            if self.model.is_dir():
                pipe = StableDiffusionPipeline.from_pretrained(self.model, **kwargs)
            else:
                if self.config is None:
                    raise BackendError(
                        "a single-file checkpoint needs diffusers_config: a "
                        "local folder with the pipeline's config files"
                    )
                pipe = StableDiffusionPipeline.from_single_file(
                    self.model, config=str(self.config), **kwargs
                )
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot load {self.model}: {exc}") from exc
        pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        self._pipe = pipe
        self._img2img = StableDiffusionImg2ImgPipeline(**pipe.components)
        self._img2img.set_progress_bar_config(disable=True)
        self.device = device
        return pipe

    def device_info(self) -> tuple[str | None, int | None]:
        """Load the pipeline now (a worker loads once, before its first job) and say where it
        runs: the device and, on CUDA, its memory."""
        import torch

        with self._lock:
            self._ensure()
        if str(self.device).startswith("cuda"):
            props = torch.cuda.get_device_properties(torch.device(self.device))
            return f"{self.device} {props.name}", int(props.total_memory)
        return str(self.device), None

    def _ensure(self) -> Any:
        if self._pipe is None:
            self._load()
        return self._pipe

    # -- Backend protocol -----------------------------------------------------------------

    def models(self) -> list[str]:
        return [self.model.name]

    def progress(self) -> float:
        return self._progress

    def cancel(self) -> None:
        self._cancel.set()

    def _callback(self, steps: int, on_progress: Any) -> Any:
        def callback(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            self._progress = (step + 1) / max(1, steps)
            if on_progress is not None:
                on_progress(self._progress)
            if self._cancel.is_set():
                pipe._interrupt = True
            return kwargs

        return callback

    def _generator(self, seed: int, n: int) -> tuple[list[Any], list[int]]:
        import torch

        base = seed if seed >= 0 else int.from_bytes(os.urandom(4), "little")
        seeds = [base + i for i in range(n)]
        return [torch.Generator("cpu").manual_seed(s) for s in seeds], seeds

    def _result(
        self,
        images: list[Image.Image],
        seeds: list[int | None],
        started: float,
        info: dict[str, Any],
    ) -> BackendResult:
        if self._cancel.is_set():
            raise BackendError("cancelled")
        out = []
        for im, seed in zip(images, seeds, strict=True):
            buf = io.BytesIO()
            im.save(buf, "PNG")
            out.append(GeneratedImage(buf.getvalue(), seed))
        # the pipeline this back end loaded, whatever the request named (jobs record it)
        return BackendResult(out, time.perf_counter() - started, {"model": str(self.model), **info})

    def txt2img(self, req: GenerateRequest, on_progress: Any = None) -> BackendResult:
        with self._lock:
            self._cancel.clear()
            pipe = self._ensure()
            gens, seeds = self._generator(req.seed, req.n)
            started = time.perf_counter()
            images = pipe(
                prompt=[req.prompt] * req.n,
                negative_prompt=[req.negative_prompt] * req.n,
                num_inference_steps=req.steps,
                guidance_scale=req.cfg_scale,
                width=req.width,
                height=req.height,
                generator=gens,
                callback_on_step_end=self._callback(req.steps, on_progress),
            ).images
            return self._result(images, list(seeds), started, {"device": self.device})

    def img2img(
        self, req: GenerateRequest, init_image: bytes, on_progress: Any = None
    ) -> BackendResult:
        with self._lock:
            self._cancel.clear()
            self._ensure()
            gens, seeds = self._generator(req.seed, req.n)
            with Image.open(io.BytesIO(init_image)) as src:
                init = src.convert("RGB").resize((req.width, req.height))
            started = time.perf_counter()
            effective = max(1, int(req.steps * req.denoise))
            images = self._img2img(
                prompt=[req.prompt] * req.n,
                negative_prompt=[req.negative_prompt] * req.n,
                image=[init] * req.n,
                strength=req.denoise,
                num_inference_steps=req.steps,
                guidance_scale=req.cfg_scale,
                generator=gens,
                callback_on_step_end=self._callback(effective, on_progress),
            ).images
            return self._result(images, list(seeds), started, {"device": self.device})

    def upscale(self, req: GenerateRequest, image: bytes) -> BackendResult:
        with self._lock:
            self._cancel.clear()
            started = time.perf_counter()
            with Image.open(io.BytesIO(image)) as src:
                im = src.convert("RGB")
            if self.upscaler_path is not None:
                from diffusers import StableDiffusionUpscalePipeline

                if self._upscaler is None:
                    self._upscaler = StableDiffusionUpscalePipeline.from_pretrained(
                        self.upscaler_path, local_files_only=True
                    ).to(self._ensure().device)
                out = self._upscaler(prompt=req.prompt, image=im).images[0]
                info = {"upscaler": "stable-diffusion-x4-upscaler"}
            else:
                size = (round(im.width * req.scale), round(im.height * req.scale))
                out = im.resize(size, Image.Resampling.LANCZOS)
                info = {"upscaler": "lanczos (fallback: no upscaler model configured)"}
            return self._result([out], [None], started, info)


def write_tiny_model(folder: Path) -> Path:
    """A tiny, randomly initialised Stable Diffusion pipeline (its images are noise), built
    offline from configs the way diffusers' own tests build theirs."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4,
        out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
        norm_num_groups=4, attention_head_dim=2,
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=[8, 16], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4,
        norm_num_groups=4,
    )  # fmt: skip
    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + len(chars) for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = CLIPTokenizer(
        vocab=vocab, merges=[], pad_token="<|endoftext|>", model_max_length=77
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"], hidden_size=16, intermediate_size=37,
        num_attention_heads=2, num_hidden_layers=2, vocab_size=len(vocab),
        max_position_embeddings=77,
    ))  # fmt: skip
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    folder.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(folder)  # type: ignore[attr-defined]
    (folder / "README.txt").write_text(
        "A tiny randomly initialised Stable Diffusion pipeline made by `dreamdepot dev "
        "tiny-model`. It exercises the real diffusers code path; its images are noise.\n",
        encoding="utf-8",
    )
    return folder
