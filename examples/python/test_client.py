#!/usr/bin/python3
"""Tests modelswap_client.py against a running gateway serving stories260K.

    MODELSWAP_ADDRESS=127.0.0.1:50051 MODELSWAP_API_KEY=... /usr/bin/python3 test_client.py

Needs the stubs from ./generate.sh (or MODELSWAP_PY_GEN pointing at them).
test/python-client.test.ts starts a server and runs this file.
"""

import os
import re
import unittest

import grpc

from modelswap_client import ModelswapClient

ADDRESS = os.environ.get("MODELSWAP_ADDRESS", "127.0.0.1:50051")
API_KEY = os.environ.get("MODELSWAP_API_KEY")
MAX_TOKENS = 48
DEADLINE_S = 30  # per call; the first one includes loading the model


class ModelswapClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = ModelswapClient(ADDRESS, api_key=API_KEY)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def test_lists_stories_with_its_alias(self):
        models = {m.name: m for m in self.client.list_models()}
        self.assertIn("stories", models, "catalog: %s" % sorted(models))
        self.assertIn("tiny", list(models["stories"].aliases))

    def test_streams_a_story(self):
        events = list(self.client.generate("stories", "Once upon a time", MAX_TOKENS, timeout=DEADLINE_S, temperature=0))
        kinds = [kind for kind, _ in events]
        self.assertEqual(kinds.count("done"), 1, "events: %s" % kinds)
        self.assertEqual(kinds[-1], "done", "events: %s" % kinds)
        self.assertTrue(set(kinds) <= {"queued", "loading", "token", "done"}, "events: %s" % kinds)

        tokens = [event.text for kind, event in events if kind == "token"]
        text = "".join(tokens)
        print("\nstory: %r" % text)
        words = set(re.findall(r"[a-z]+", text.lower()))
        common = {"the", "a", "and", "was", "he", "she", "to", "they", "it", "her", "his", "there", "upon", "little"}
        self.assertTrue(words & common, "no common English word in %r" % text)

        done = events[-1][1]
        self.assertEqual(done.model, "stories")
        self.assertIn(done.finish_reason, ("stop", "length"))
        self.assertGreater(done.usage.completion_tokens, 0)
        self.assertGreater(done.usage.prompt_tokens, 0)
        # Each token event carries one or more tokens (the server joins tokens that
        # arrive within a few milliseconds; a piece never splits a UTF-8 character).
        self.assertGreaterEqual(done.usage.completion_tokens, len(tokens), "text pieces: %r" % tokens)
        if done.finish_reason == "length":
            self.assertEqual(done.usage.completion_tokens, MAX_TOKENS)
        else:
            self.assertLessEqual(done.usage.completion_tokens, MAX_TOKENS)
        self.assertGreater(done.timings.total_ms, 0)
        self.assertGreaterEqual(done.timings.total_ms, done.timings.ttft_ms)

        # temperature=0 is an explicitly set proto3 `optional`, so it overrides the
        # model's configured default (0.7 in the test config): greedy twice, same text.
        again = self.client.generate("stories", "Once upon a time", MAX_TOKENS, timeout=DEADLINE_S, temperature=0)
        self.assertEqual("".join(event.text for kind, event in again if kind == "token"), text)

    def test_alias_resolves_to_catalog_name(self):
        events = list(self.client.generate("tiny", "Once upon a time", 4, timeout=DEADLINE_S, temperature=0))
        kind, done = events[-1]
        self.assertEqual(kind, "done")
        self.assertEqual(done.model, "stories")

    def test_unknown_model_is_not_found_and_names_the_known_models(self):
        with self.assertRaises(grpc.RpcError) as caught:
            list(self.client.generate("no-such-model", "Once upon a time", 8, timeout=DEADLINE_S))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND, caught.exception.details())
        self.assertIn("no-such-model", caught.exception.details())
        self.assertIn("stories", caught.exception.details())

    def test_zero_max_tokens_is_invalid_argument(self):
        with self.assertRaises(grpc.RpcError) as caught:
            list(self.client.generate("stories", "Once upon a time", 0, timeout=DEADLINE_S))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, caught.exception.details())
        self.assertIn("max_tokens", caught.exception.details())


class ApiKeyTest(unittest.TestCase):
    """Against a server with auth.keys (MODELSWAP_API_KEY set): no key or a wrong one is refused."""

    @unittest.skipUnless(API_KEY, "the server has no keys (MODELSWAP_API_KEY unset)")
    def test_calls_without_a_valid_key_are_unauthenticated(self):
        for key in (None, "wrong-key-0123456789abcdef"):
            with ModelswapClient(ADDRESS, api_key=key) as client:
                with self.assertRaises(grpc.RpcError) as caught:
                    client.list_models()
                self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED, caught.exception.details())
                self.assertIn("API key", caught.exception.details())


if __name__ == "__main__":
    unittest.main(verbosity=2)
