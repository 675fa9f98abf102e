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
parser.add_argument("--ctx", type=int, required=True)
parser.add_argument("--threads", type=int, required=True)
args = parser.parse_args()

params = xllamacpp.CommonParams()
params.model.path = args.model
params.model_alias = [args.alias]
params.hostnames = ["127.0.0.1"]
params.port = args.port
params.n_ctx = args.ctx
params.cpuparams.n_threads = args.threads
params.cpuparams_batch.n_threads = args.threads
# Qwen's own chat template (from the GGUF) renders tools and tool results.
params.use_jinja = True
params.ui = False

server = xllamacpp.Server(params)
print(f"agentopt serve: listening on {server.listening_address}", flush=True)
while True:
    signal.pause()
