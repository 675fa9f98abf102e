"""Runs llama.cpp's OpenAI-compatible HTTP server in this process (xllamacpp).

Started by agentopt-llm's LocalServer; it exits when killed (the parent arranges
SIGKILL on its own death, so it never outlives it).
"""
import argparse
import signal

import xllamacpp

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--alias", required=True)
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--ctx", type=int, required=True, help="context per slot")
parser.add_argument("--parallel", type=int, default=1, help="slots decoded together")
parser.add_argument("--threads", type=int, required=True)
args = parser.parse_args()

params = xllamacpp.CommonParams()
params.model.path = args.model
params.model_alias = [args.alias]
params.hostnames = ["127.0.0.1"]
params.port = args.port
# One KV region per slot (not unified), so every conversation has its full context.
params.n_parallel = args.parallel
params.n_ctx = args.ctx * args.parallel
params.kv_unified = False
# Continuous batching: the slots' tokens are decoded in one batch per step.
params.cont_batching = True
# A conversation's next turn reuses the KV of its previous prompt: requests go to
# the slot whose cached prompt shares the most with theirs, and a slot's prompt is
# kept in host memory when another conversation takes the slot.
params.cache_prompt = True
params.cache_idle_slots = True
params.cache_ram_mib = 1024 * args.parallel
params.cpuparams.n_threads = args.threads
params.cpuparams_batch.n_threads = args.threads
# Qwen's own chat template (from the GGUF) renders tools and tool results.
params.use_jinja = True
params.ui = False

server = xllamacpp.Server(params)
print(f"agentopt serve: listening on {server.listening_address}", flush=True)
while True:
    signal.pause()
