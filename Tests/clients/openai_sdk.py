"""Drives failover-lab's gateway with the official openai SDK and prints what happened as JSON.

Usage: python openai_sdk.py NO_RETRY_BASE_URL DEFAULT_RETRY_BASE_URL
Each base URL is a fresh seed lab's route (http://127.0.0.1:PORT/http-429).
"""
import io
import json
import logging
import sys

import openai

PROMPT = [{"role": "user", "content": "What is 2+2?"}]


def main() -> None:
    no_retry_url, default_retry_url = sys.argv[1], sys.argv[2]
    result = {"sdk_version": openai.__version__}

    # 1. max_retries=0: the first call raises RateLimitError, the second fails over.
    client = openai.OpenAI(base_url=no_retry_url, api_key="sk-client-not-used", max_retries=0)
    try:
        client.chat.completions.create(model="", messages=PROMPT)
        result["first"] = {"raised": None}
    except openai.RateLimitError as error:
        result["first"] = {
            "raised": type(error).__name__,
            "status": error.status_code,
            "retry_after": error.response.headers.get("retry-after"),
            "attempts": error.response.headers.get("x-failover-attempts"),
            "message": error.body.get("message") if isinstance(error.body, dict) else str(error.body),
        }
    second = client.chat.completions.create(model="", messages=PROMPT)
    result["second"] = {"model": second.model, "content": second.choices[0].message.content,
                        "usage": second.usage.total_tokens if second.usage else None}

    # 2. Default retries on a fresh lab: one call succeeds; the SDK's log says what it did.
    log_buffer = io.StringIO()
    handler = logging.StreamHandler(log_buffer)
    handler.setLevel(logging.DEBUG)
    sdk_logger = logging.getLogger("openai")
    sdk_logger.setLevel(logging.DEBUG)
    sdk_logger.addHandler(handler)
    retrying = openai.OpenAI(base_url=default_retry_url, api_key="sk-client-not-used")
    raw = retrying.chat.completions.with_raw_response.create(model="", messages=PROMPT)
    completion = raw.parse()
    sdk_logger.removeHandler(handler)
    result["default_retries"] = {
        "model": completion.model,
        "retries_taken": raw.retries_taken,
        "attempts": raw.headers.get("x-failover-attempts"),
        "sdk_log": [line for line in log_buffer.getvalue().splitlines() if "etry" in line],
    }

    # 3. Streaming gives the same text as the non-streamed call.
    stream = retrying.chat.completions.create(model="", messages=PROMPT, stream=True)
    pieces = []
    chunks = 0
    for chunk in stream:
        chunks += 1
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    result["stream"] = {"text": "".join(pieces), "chunks": chunks}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
