#!/usr/bin/python3
"""A small Python client for modelswap's public gRPC API (modelswap.v1.Inference).

Run ./generate.sh first: it writes the stubs into ./gen from the protos.

    MODELSWAP_API_KEY=... /usr/bin/python3 modelswap_client.py stories --address 127.0.0.1:50051

Use it from your own code (api_key: a key from the server's auth.keys, when it has
any; tls_ca: the PEM CA file of a gateway that serves TLS):

    with ModelswapClient("127.0.0.1:50051", api_key=os.environ.get("MODELSWAP_API_KEY")) as client:
        for model in client.list_models():
            print(model.name, model.aliases)
        for kind, event in client.generate("tiny", "Once upon a time", 64, temperature=0):
            if kind == "token":
                print(event.text, end="")
"""

import argparse
import os
import sys

import grpc

# The generated modules import each other as `modelswap.v1.*`, so the directory
# generate.sh wrote (./gen unless MODELSWAP_PY_GEN says otherwise) is the import root.
_GEN_DIR = os.environ.get(
    "MODELSWAP_PY_GEN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen")
)
sys.path.insert(0, _GEN_DIR)

try:
    from modelswap.v1 import inference_pb2, inference_pb2_grpc
except ImportError as error:
    sys.exit("cannot import the generated stubs from %s (%s); run ./generate.sh first" % (_GEN_DIR, error))

DEFAULT_ADDRESS = "127.0.0.1:50051"


class ModelswapClient:
    """One channel to the modelswap gateway. Close it (or use `with`) when done.

    api_key is sent as "authorization: Bearer <key>" on every call (the server answers
    UNAUTHENTICATED without a valid one when it has auth.keys); tls_ca is the path of
    the PEM certificate that signed the gateway's TLS certificate (plaintext without it).
    """

    def __init__(self, address=DEFAULT_ADDRESS, api_key=None, tls_ca=None):
        if tls_ca:
            with open(tls_ca, "rb") as pem:
                self._channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=pem.read()))
        else:
            self._channel = grpc.insecure_channel(address)
        self._metadata = (("authorization", "Bearer " + api_key),) if api_key else ()
        self._inference = inference_pb2_grpc.InferenceStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def list_models(self, timeout=10.0):
        """The catalog: a list of ModelInfo (name, aliases, tasks, state, sizes...)."""
        return list(self._inference.ListModels(inference_pb2.ListModelsRequest(), timeout=timeout, metadata=self._metadata).models)

    def generate(self, model, prompt, max_tokens, timeout=60.0, **sampling):
        """Streams a completion of `prompt`, yielding (kind, event) pairs.

        kind is "queued" or "loading" (zero or more, while the model is made
        resident), then "token" (event.text), then exactly one "done" (event.usage,
        event.timings, event.finish_reason). Keyword arguments are SamplingParams
        fields: temperature, top_k, top_p, min_p, repeat_penalty, seed, stop,
        ignore_eos; those left out take the model's configured defaults.

        Errors raise grpc.RpcError: e.code() is a grpc.StatusCode and e.details()
        says what to fix (NOT_FOUND for an unknown model, INVALID_ARGUMENT for bad
        parameters, RESOURCE_EXHAUSTED when the wait queue is full, UNAUTHENTICATED
        without a valid API key...).
        """
        request = inference_pb2.GenerateRequest(
            model=model,
            prompt=prompt,
            max_tokens=max_tokens,
            sampling=inference_pb2.SamplingParams(**sampling),
        )
        for response in self._inference.Generate(request, timeout=timeout, metadata=self._metadata):
            kind = response.WhichOneof("event")
            yield kind, getattr(response, kind)


def main():
    parser = argparse.ArgumentParser(description="List modelswap's models, then stream a story.")
    parser.add_argument("model", help='model name or alias, e.g. "stories" or "tiny"')
    parser.add_argument(
        "--address",
        default=os.environ.get("MODELSWAP_ADDRESS", DEFAULT_ADDRESS),
        help="gateway host:port (default: $MODELSWAP_ADDRESS or %s)" % DEFAULT_ADDRESS,
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("MODELSWAP_API_KEY"),
        help="API key (default: $MODELSWAP_API_KEY; needed when the server has auth.keys)",
    )
    parser.add_argument(
        "--tls-ca",
        default=os.environ.get("MODELSWAP_TLS_CA"),
        help="PEM CA certificate of a TLS gateway (default: $MODELSWAP_TLS_CA)",
    )
    parser.add_argument("--prompt", default="Once upon a time")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, help="0 = greedy; default: the model's")
    args = parser.parse_args()

    sampling = {}
    if args.temperature is not None:
        sampling["temperature"] = args.temperature

    with ModelswapClient(args.address, api_key=args.api_key, tls_ca=args.tls_ca) as client:
        try:
            print("models:")
            for info in client.list_models():
                state = inference_pb2.ModelState.Name(info.state)
                aliases = ", ".join(info.aliases) or "-"
                print("  %-20s aliases: %-15s %s" % (info.name, aliases, state))

            print()
            started = False
            for kind, event in client.generate(args.model, args.prompt, args.max_tokens, **sampling):
                if kind == "queued":
                    print("[queued at position %d for %s]" % (event.position, event.model), file=sys.stderr)
                elif kind == "loading":
                    print("[loading %s: %.0f%%]" % (event.model, event.progress * 100), file=sys.stderr)
                elif kind == "token":
                    if not started:
                        print(args.prompt, end="")
                        started = True
                    print(event.text, end="", flush=True)
                elif kind == "done":
                    print()
                    print()
                    print("model %s, finish_reason %s" % (event.model, event.finish_reason))
                    print(
                        "usage: prompt_tokens=%d completion_tokens=%d"
                        % (event.usage.prompt_tokens, event.usage.completion_tokens)
                    )
                    t = event.timings
                    print(
                        "timings: queue %.1f ms, load %.1f ms, first token %.1f ms, total %.1f ms, %.1f tokens/s"
                        % (t.queue_ms, t.load_ms, t.ttft_ms, t.total_ms, t.tokens_per_second)
                    )
        except grpc.RpcError as error:
            print("\nerror: %s: %s" % (error.code().name, error.details()), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
