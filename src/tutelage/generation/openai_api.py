"""Generate completions from any server that speaks the OpenAI chat completions API.

vLLM, llama.cpp's server, Ollama and OpenAI itself all accept the same request;
they differ in details this module smooths over: some ignore `n` and answer with
one choice, so missing choices are asked for again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tutelage.generation.backend import GenerationError, check_settings
from tutelage.records import Completion, Prompt

__all__ = ["OpenAIBackend", "api_root", "served_models"]


def api_root(base_url: str) -> str:
    """Return the server root of `base_url`, accepting it with or without a trailing /v1."""
    root = base_url.rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    return root


def _server_message(response: httpx.Response) -> str:
    """Return the error message a server put in its answer, whatever shape it used."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body.get("message")))
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if error is not None:
            return str(error)
    return str(body)[:500]


def _request(client: httpx.Client, method: str, url: str, body: Any = None) -> dict[str, Any]:
    """Send one request and return its JSON object, turning every failure into GenerationError."""
    try:
        response = client.request(method, url, json=body)
    except httpx.ConnectError as error:
        raise GenerationError(
            f"could not connect to {url} ({error}); is the server running?"
        ) from error
    except httpx.TimeoutException as error:
        raise GenerationError(
            f"{url} did not answer within {client.timeout.read} seconds"
        ) from error
    except httpx.HTTPError as error:
        raise GenerationError(f"request to {url} failed: {error}") from error
    if response.is_error:
        raise GenerationError(
            f"{url} answered HTTP {response.status_code}: {_server_message(response)}"
        )
    try:
        answer = response.json()
    except ValueError:
        raise GenerationError(f"{url} answered with something other than JSON") from None
    if not isinstance(answer, dict):
        raise GenerationError(f"{url} answered with JSON that is not an object")
    return answer


def _client(
    api_key: str | None, timeout: float, transport: httpx.BaseTransport | None
) -> httpx.Client:
    key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(headers=headers, timeout=timeout, transport=transport)


def served_models(
    base_url: str,
    *,
    api_key: str | None = None,
    timeout: float = 60,
    transport: httpx.BaseTransport | None = None,
) -> list[str]:
    """Return the ids of the models the server lists at /v1/models, in its order."""
    url = f"{api_root(base_url)}/v1/models"
    with _client(api_key, timeout, transport) as client:
        answer = _request(client, "GET", url)
    entries = answer.get("data")
    if not isinstance(entries, list):
        raise GenerationError(f"{url} answered without a 'data' list of models")
    return [str(entry["id"]) for entry in entries if isinstance(entry, dict) and "id" in entry]


class OpenAIBackend:
    """A model behind an OpenAI-compatible HTTP server.

    Prompts are sent concurrently, at most `concurrency` at a time; answers come
    back in prompt order. The API key comes from `api_key` or $OPENAI_API_KEY.
    `transport` lets tests and embedders route requests without a network.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60,
        concurrency: int = 4,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.base_url = api_root(base_url)
        self.endpoint = f"{self.base_url}/v1/chat/completions"
        self._model = model
        self._api_key = api_key
        self._timeout = timeout
        self._concurrency = concurrency
        self._transport = transport

    @property
    def model_id(self) -> str:
        """Return the model name sent to the server."""
        return self._model

    @property
    def model_version(self) -> str:
        """Return "": a server does not say which weights stand behind a name."""
        return ""

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        n: int = 1,
        temperature: float = 0.7,
        max_new_tokens: int = 256,
        seed: int | None = None,
    ) -> list[list[Completion]]:
        """Return `n` completions for each prompt, in prompt order.

        When a server answers with fewer than `n` choices it is asked again for
        the rest; with a seed, each repeat uses the seed plus the number of
        choices already received, so a seeded server does not repeat itself.
        """
        check_settings(n=n, temperature=temperature, max_new_tokens=max_new_tokens)
        if not prompts:
            return []
        settings: dict[str, Any] = {
            "backend": "openai",
            "base_url": self.base_url,
            "temperature": temperature,
            "max_new_tokens": max_new_tokens,
            "seed": seed,
        }
        with (
            _client(self._api_key, self._timeout, self._transport) as client,
            ThreadPoolExecutor(max_workers=min(self._concurrency, len(prompts))) as pool,
        ):
            return list(
                pool.map(lambda prompt: self._complete(client, prompt, n, settings), prompts)
            )

    def _complete(
        self, client: httpx.Client, prompt: Prompt, n: int, settings: dict[str, Any]
    ) -> list[Completion]:
        completions: list[Completion] = []
        while len(completions) < n:
            wanted = n - len(completions)
            body: dict[str, Any] = {
                "model": self._model,
                "messages": [message.model_dump() for message in prompt.messages],
                "n": wanted,
                "temperature": settings["temperature"],
                "max_tokens": settings["max_new_tokens"],
            }
            if settings["seed"] is not None:
                body["seed"] = settings["seed"] + len(completions)
            answer = _request(client, "POST", self.endpoint, body)
            choices = answer.get("choices")
            if not isinstance(choices, list) or not choices:
                raise GenerationError(f"{self.endpoint} answered without any choices")
            completions.extend(
                self._completion(choice, answer, settings) for choice in choices[:wanted]
            )
        return completions

    def _completion(
        self, choice: object, answer: dict[str, Any], settings: dict[str, Any]
    ) -> Completion:
        if not isinstance(choice, dict):
            raise GenerationError(f"{self.endpoint} answered with a choice that is not an object")
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if content is not None and not isinstance(content, str):
            raise GenerationError(f"{self.endpoint} answered with a non-text message")
        generation = {**settings, "finish_reason": choice.get("finish_reason")}
        if isinstance(answer.get("model"), str):
            generation["served_model"] = answer["model"]
        if isinstance(answer.get("system_fingerprint"), str):
            generation["system_fingerprint"] = answer["system_fingerprint"]
        return Completion(
            text=(content or "").strip(),
            model_id=self.model_id,
            model_version=self.model_version,
            generation=generation,
        )
