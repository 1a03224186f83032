"""ComfyUI: recover prompt, seed, sampler and model by walking the API ("prompt") graph.

A graph is ``{node_id: {"class_type", "inputs": {name: literal | [src_id, slot]}}}``.
We start from the sampler nodes, follow ``positive``/``negative`` back through conditioning
nodes to the text encoders, ``model`` back through LoRA and model-sampling nodes to the
checkpoint, and ``sampler``/``sigmas``/``noise``/``guider`` links to the SamplerCustom
family's helper nodes.

Which pass is the image's own: the sampler nearest the first output node ends the chain; its
``latent_image`` is followed back to earlier samplers (through decode, upscale and encode
nodes) and the **first** sampler of that chain gives the image's seed, steps, sampler and
prompt, as A1111's infotext and every peer do; later samplers are ``hires`` passes beside it.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from dreamdepot.errors import MetadataError
from dreamdepot.ingest.metadata.model import (
    Generation,
    Pass,
    Resource,
    to_float,
    to_int,
    to_str,
)

MAX_NODES = 20_000
MAX_DEPTH = 64

_TEXT_KEYS = ("text", "t5xxl", "text_g", "clip_l", "text_l", "clip_g", "prompt", "string")
_TEXT_RESOLVE_KEYS = (
    "text",
    "string",
    "value",
    "prompt",
    "text_positive",
    "positive",
    "populated_text",
    "wildcard_text",
    "STRING",
)
# inputs that mark a node as generating text at run time (LLM prompt writers: TextGenerate,
# TIPO, Florence, Ollama…): its output is not in the graph
_GENERATOR_KEYS = ("max_length", "max_new_tokens", "max_tokens", "temperature", "top_p",
                   "sampling_mode.temperature")  # fmt: skip
_SWITCH_KEYS = ("switch", "boolean", "condition", "select_bool")
_MODEL_KEYS = ("ckpt_name", "unet_name", "model_name", "gguf_name", "base_ckpt_name")
_SINK_TYPES = ("SaveImage", "PreviewImage", "SaveAnimatedWEBP", "SaveAnimatedPNG", "Image Save")


def load_graph(text: str) -> dict[str, dict[str, Any]]:
    """Parse an API-format graph, tolerating NaN/Infinity (ComfyUI writes them)."""
    try:
        data = json.loads(text, parse_constant=lambda _c: None)
    except RecursionError as exc:
        raise MetadataError("ComfyUI graph nests too deeply") from exc
    except ValueError as exc:
        raise MetadataError(f"ComfyUI graph is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MetadataError("ComfyUI graph is not an object")
    if len(data) > MAX_NODES:
        raise MetadataError(f"ComfyUI graph has {len(data)} nodes, over the cap")
    graph = {str(k): v for k, v in data.items() if isinstance(v, dict)}
    if not any("class_type" in v for v in graph.values()):
        raise MetadataError("not a ComfyUI API graph (no class_type)")
    return graph


def is_link(value: Any) -> bool:
    """``[source_node_id, output_slot]`` (exact types: JSON gives no subclasses, and a bool is
    not a node id). Called for every input of every node, so kept to type checks."""
    return (
        type(value) is list
        and len(value) == 2
        and type(value[1]) is int
        and type(value[0]) in (str, int)
    )


class _Walker:
    def __init__(self, graph: dict[str, dict[str, Any]]) -> None:
        self.graph = graph
        self.unresolved: list[str] = []  # "ClassType#id" of nodes whose text we cannot know

    def _unresolved(self, nid: str) -> None:
        label = f"{self.graph[nid].get('class_type', '?')}#{nid}"
        if label not in self.unresolved:
            self.unresolved.append(label)

    def node(self, ref: Any) -> tuple[str, dict[str, Any]] | None:
        if not is_link(ref):
            return None
        nid = str(ref[0])
        node = self.graph.get(nid)
        return (nid, node) if isinstance(node, dict) else None

    @staticmethod
    def inputs(node: dict[str, Any]) -> dict[str, Any]:
        ins = node.get("inputs")
        return ins if isinstance(ins, dict) else {}

    def is_sampler(self, node: dict[str, Any]) -> bool:
        ins = self.inputs(node)
        has_seed = any(k in ins for k in ("seed", "noise_seed", "noise"))
        has_steps = any(k in ins for k in ("steps", "sigmas", "sampler_name", "sampler"))
        has_cond = any(k in ins for k in ("positive", "guider", "conditioning"))
        return has_seed and has_steps and has_cond

    def resolve_scalar(self, value: Any, keys: tuple[str, ...]) -> Any:
        """Follow links to a primitive-like node and return its value (cycles end in None)."""
        seen: set[str] = set()
        while is_link(value):
            found = self.node(value)
            if found is None or found[0] in seen or len(seen) > MAX_DEPTH:
                return None
            seen.add(found[0])
            ins = self.inputs(found[1])
            key = next((k for k in keys if k in ins), None)
            if key is None:
                return next(
                    (
                        v
                        for v in ins.values()
                        if isinstance(v, int | float | str) and not isinstance(v, bool)
                    ),
                    None,
                )
            value = ins[key]
        return value

    def resolve_text(self, value: Any, seen: set[str] | None = None) -> str | None:
        """A text input's string, following links by what each node does with its inputs:
        a switch takes the branch its boolean selects (the other when that one is only known
        at run time), a concatenation joins its parts with its delimiter, a node with one
        linked input passes it on; an LLM writer yields None and is recorded as unresolved."""
        if isinstance(value, str):
            return value
        seen = set() if seen is None else seen
        found = self.node(value)
        if found is None or found[0] in seen or len(seen) > MAX_DEPTH:
            return None
        nid, node = found
        seen.add(nid)
        ins = self.inputs(node)
        if any(k in ins for k in _GENERATOR_KEYS):
            self._unresolved(nid)
            return None
        if "on_true" in ins or "on_false" in ins:
            flag = next((ins[k] for k in _SWITCH_KEYS if k in ins), True)
            chosen = bool(self.resolve_scalar(flag, ("value", "boolean")))
            first, other = ("on_true", "on_false") if chosen else ("on_false", "on_true")
            for key in (first, other):
                text = self.resolve_text(ins.get(key), set(seen))
                if text is not None:
                    return text
            return None
        for k in _TEXT_RESOLVE_KEYS:
            if k in ins:
                text = self.resolve_text(ins[k], seen)
                if text is not None:
                    return text
        parts_keys = [
            k for k in ins if k.startswith(("text", "string")) and k != "string_delimiter"
        ]
        if parts_keys:
            delimiter = ins.get("delimiter", ins.get("separator", " "))
            delimiter = delimiter if isinstance(delimiter, str) else " "
            parts = [self.resolve_text(ins[k], seen) for k in sorted(parts_keys)]
            joined = delimiter.join(p for p in parts if p)
            if joined:
                return joined
        links = [v for v in ins.values() if is_link(v)]
        if len(links) == 1:  # reroute, preview, any pass-through node
            return self.resolve_text(links[0], seen)
        if links:
            self._unresolved(nid)
        return None

    def prompt_texts(self, ref: Any) -> list[str]:
        """Texts of every text encoder reachable back through conditioning links."""
        texts: list[str] = []
        seen: set[str] = set()
        stack: list[tuple[Any, int]] = [(ref, 0)]
        while stack:
            cur, depth = stack.pop()
            found = self.node(cur)
            if found is None or depth > MAX_DEPTH or found[0] in seen:
                continue
            nid, node = found
            seen.add(nid)
            ins = self.inputs(node)
            encoded = self._encoder_text(ins)
            if encoded is not None:
                if encoded not in texts:
                    texts.append(encoded)
                continue
            if is_link(ins.get("positive")) and is_link(ins.get("negative")):
                # a pass-through pair (ControlNetApplyAdvanced, InpaintModelConditioning…):
                # output slot 0 carries the positive side, slot 1 the negative
                nexts = [ins["negative"] if cur[1] == 1 else ins["positive"]]
            else:
                nexts = [
                    v
                    for k, v in ins.items()
                    if is_link(v) and ("conditioning" in k or k in ("positive", "base_positive"))
                ]
            stack.extend((v, depth + 1) for v in reversed(nexts))
        return texts

    def _encoder_text(self, ins: dict[str, Any]) -> str | None:
        """The text of a node that encodes one: it takes a CLIP (under any input name —
        ``clip``, rgthree's ``opt_clip``…) or has SDXL/SD3/FLUX text fields."""
        takes_clip = any("clip" in k and is_link(v) for k, v in ins.items())
        if not takes_clip and not any(k in ins for k in ("t5xxl", "text_g")):
            return None
        parts: list[str] = []
        for k in _TEXT_KEYS:
            if k in ins:
                t = self.resolve_text(ins[k])
                if t is not None and t.strip() and t not in parts:
                    parts.append(t)
        if not parts:
            return "" if any(k in ins for k in _TEXT_KEYS) else None
        return parts[0] if len(parts) == 1 else "\n".join(parts)

    def model_chain(self, ref: Any) -> tuple[str | None, list[Resource]]:
        loras: list[Resource] = []
        cur = ref
        for _ in range(MAX_DEPTH):
            found = self.node(cur)
            if found is None:
                break
            ins = self.inputs(found[1])
            for k in _MODEL_KEYS:
                if k in ins:
                    return to_str(self.resolve_scalar(ins[k], (k,))), loras
            if "lora_name" in ins:
                name = to_str(self.resolve_scalar(ins["lora_name"], ("lora_name",)))
                if name:
                    weight = to_float(ins.get("strength_model", ins.get("strength")))
                    loras.append(Resource(name, weight))
            nxt = ins.get("model")
            if not is_link(nxt):
                nxt = self._pass_through(ins)
            if nxt is None:
                break
            cur = nxt
        return None, loras

    def _pass_through(self, ins: dict[str, Any]) -> Any:
        """The input a switch selects, or the only linked input of any other node."""
        if "on_true" in ins or "on_false" in ins:
            flag = next((ins[k] for k in _SWITCH_KEYS if k in ins), True)
            chosen = "on_true" if self.resolve_scalar(flag, ("value", "boolean")) else "on_false"
            other = "on_false" if chosen == "on_true" else "on_true"
            return ins.get(chosen) if is_link(ins.get(chosen)) else ins.get(other)
        links = [v for v in ins.values() if is_link(v)]
        return links[0] if len(links) == 1 else None

    def sinks(self) -> list[str]:
        """Output nodes: the save/preview ones by type, else every node nothing reads."""
        named = [
            nid
            for nid, n in self.graph.items()
            if str(n.get("class_type", "")).startswith(_SINK_TYPES)
        ]
        if named:
            return named
        referenced = {
            str(v[0]) for node in self.graph.values() for v in self.inputs(node).values()
            if is_link(v)
        }  # fmt: skip
        return [nid for nid in self.graph if nid not in referenced]

    def nearest_sampler(self, start: str, samplers: set[str]) -> str | None:
        queue: deque[str] = deque([start])
        seen = {start}
        while queue:
            nid = queue.popleft()
            if nid in samplers:
                return nid
            for v in self.inputs(self.graph.get(nid, {})).values():
                if is_link(v) and str(v[0]) not in seen and str(v[0]) in self.graph:
                    seen.add(str(v[0]))
                    queue.append(str(v[0]))
        return None

    def upstream_of(self, start: Any, targets: set[str]) -> str | None:
        """The nearest of ``targets`` upstream of the link ``start`` (breadth first)."""
        queue: deque[Any] = deque([start])
        seen: set[str] = set()
        while queue:
            found = self.node(queue.popleft())
            if found is None or found[0] in seen:
                continue
            seen.add(found[0])
            if found[0] in targets:
                return found[0]
            queue.extend(v for v in self.inputs(found[1]).values() if is_link(v))
        return None

    def first_of_chain(self, last: str, samplers: set[str]) -> str:
        """The first sampler of the chain of passes that ends at ``last``."""
        cur, seen = last, {last}
        for _ in range(MAX_DEPTH):
            latent = self.inputs(self.graph[cur]).get("latent_image")
            prev = self.upstream_of(latent, samplers - seen)
            if prev is None:
                break
            seen.add(prev)
            cur = prev
        return cur

    def upstream_has(self, start: Any, targets: set[str]) -> bool:
        return self.upstream_of(start, targets) is not None


def _sampler_pass(w: _Walker, nid: str) -> Pass:
    ins = w.inputs(w.graph[nid])
    p = Pass(kind="sampler", extra={"node": nid, "class_type": w.graph[nid].get("class_type")})
    seed = ins.get("seed", ins.get("noise_seed"))
    if seed is None and is_link(ins.get("noise")):
        seed = w.resolve_scalar(ins["noise"], ("noise_seed", "seed"))
    p.seed = to_int(w.resolve_scalar(seed, ("seed", "noise_seed", "value")))
    p.steps = to_int(w.resolve_scalar(ins.get("steps"), ("steps", "value")))
    p.cfg_scale = to_float(w.resolve_scalar(ins.get("cfg"), ("cfg", "value")))
    p.denoise = to_float(ins.get("denoise"))
    p.sampler = to_str(w.resolve_scalar(ins.get("sampler_name"), ("sampler_name",)))
    p.scheduler = to_str(w.resolve_scalar(ins.get("scheduler"), ("scheduler",)))
    if p.sampler is None and is_link(ins.get("sampler")):
        p.sampler = to_str(w.resolve_scalar(ins["sampler"], ("sampler_name",)))
    sigmas = w.node(ins.get("sigmas"))
    if sigmas is not None:
        sins = w.inputs(sigmas[1])
        p.steps = p.steps or to_int(w.resolve_scalar(sins.get("steps"), ("steps", "value")))
        p.scheduler = p.scheduler or to_str(sins.get("scheduler")) or sigmas[1].get("class_type")
        p.denoise = p.denoise if p.denoise is not None else to_float(sins.get("denoise"))
    positive, negative, model_ref = ins.get("positive"), ins.get("negative"), ins.get("model")
    guider = w.node(ins.get("guider"))
    if guider is not None:
        gins = w.inputs(guider[1])
        positive = gins.get("positive", gins.get("conditioning"))
        negative = gins.get("negative")
        model_ref = gins.get("model")
        p.cfg_scale = p.cfg_scale if p.cfg_scale is not None else to_float(gins.get("cfg"))
    pos = w.prompt_texts(positive)
    neg = w.prompt_texts(negative)
    p.prompt = "\n".join(t for t in pos if t) or None
    p.negative_prompt = "\n".join(t for t in neg if t) or None
    if len(pos) > 1:
        p.extra["prompts"] = pos
    p.model, loras = w.model_chain(model_ref)
    p.extra["loras"] = loras
    guidance = _find_guidance(w, positive)
    if guidance is not None:
        p.extra["guidance"] = guidance
    latent = w.node(ins.get("latent_image"))
    if latent is not None:
        lins = w.inputs(latent[1])
        if "width" in lins and "height" in lins and "samples" not in lins:
            p.extra["width"] = to_int(w.resolve_scalar(lins["width"], ("width", "value")))
            p.extra["height"] = to_int(w.resolve_scalar(lins["height"], ("height", "value")))
    return p


def _find_guidance(w: _Walker, ref: Any) -> float | None:
    cur = ref
    for _ in range(MAX_DEPTH):
        found = w.node(cur)
        if found is None:
            return None
        ins = w.inputs(found[1])
        if "guidance" in ins:
            return to_float(ins["guidance"])
        cur = ins.get("conditioning")
    return None


def generation_from_graph(
    graph: dict[str, dict[str, Any]], raw: str | None = None, generator: str = "comfyui"
) -> Generation:
    """Build a Generation from an API graph; raises MetadataError when nothing is found."""
    w = _Walker(graph)
    samplers = [nid for nid, node in graph.items() if w.is_sampler(node)]
    g = Generation(generator=generator, raw=raw, graph=graph)
    if not samplers:
        # No sampler (e.g. an upscale-only workflow): still report the texts we can find.
        texts = [
            t for node in graph.values() if (t := w._encoder_text(w.inputs(node))) is not None and t
        ]
        if not texts and not any(
            any(k in w.inputs(n) for k in _MODEL_KEYS) for n in graph.values()
        ):
            raise MetadataError("ComfyUI graph has no sampler and no prompt")
        g.prompt = "\n".join(texts) or None
        g.model = next(
            (
                v
                for node in graph.values()
                for k, v in w.inputs(node).items()
                if k in _MODEL_KEYS and isinstance(v, str)
            ),
            None,
        )
        return g
    sampler_set = set(samplers)
    main = None
    for sink in w.sinks():
        main = w.nearest_sampler(sink, sampler_set)
        if main:
            break
    main = w.first_of_chain(main or samplers[0], sampler_set)
    first = _sampler_pass(w, main)
    g.seed, g.steps, g.cfg_scale, g.denoise = (
        first.seed,
        first.steps,
        first.cfg_scale,
        first.denoise,
    )
    g.sampler, g.scheduler, g.model = first.sampler, first.scheduler, first.model
    g.prompt, g.negative_prompt = first.prompt, first.negative_prompt
    g.loras = first.extra.pop("loras", [])
    g.width, g.height = first.extra.pop("width", None), first.extra.pop("height", None)
    if "prompts" in first.extra:
        g.params["prompts"] = first.extra["prompts"]
    if "guidance" in first.extra:
        g.params["guidance"] = first.extra["guidance"]
    if g.denoise == 1.0:
        g.denoise = None
    for nid in samplers:
        if nid == main:
            continue
        p = _sampler_pass(w, nid)
        p.extra.pop("loras", None)
        ins = w.inputs(graph[nid])
        if w.upstream_has(ins.get("latent_image"), {main}):
            p.kind = "hires"
        g.passes.append(p)
    _attach_vae_and_clip_skip(w, g)
    if w.unresolved:
        g.params["unresolved"] = w.unresolved
    return g


def _attach_vae_and_clip_skip(w: _Walker, g: Generation) -> None:
    for node in w.graph.values():
        ins = w.inputs(node)
        if g.vae is None and isinstance(ins.get("vae_name"), str):
            g.vae = ins["vae_name"]
        if g.clip_skip is None and "stop_at_clip_layer" in ins:
            skip = to_int(ins["stop_at_clip_layer"])
            g.clip_skip = abs(skip) if skip is not None else None


def workflow_summary(text: str) -> dict[str, Any]:
    """Note that a UI workflow exists and its size, without parsing it: the API graph holds
    what we read, and the workflow (often 100 KB+) stays in the file for ComfyUI to load."""
    return {"bytes": len(text.encode("utf-8", "replace"))}
