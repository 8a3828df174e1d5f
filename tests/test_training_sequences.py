"""Rows that share a prompt between answers, and pack several groups, compute the same
log-probabilities as each prompt+answer run on its own, through the real SmolLM2."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tutelage.training.sequences import (  # noqa: E402
    AnswerScorer,
    Group,
    answer_logprobs,
    encode_answer_ids,
    encode_prompt,
    fit_group,
    group_rows,
    pack_groups,
)


@pytest.fixture(scope="module")
def smollm2() -> tuple[object, object]:
    from tutelage.generation.bundled import model_path

    try:
        folder = model_path("smollm2-135m-instruct")
    except Exception as exc:  # not prepared on this machine
        pytest.skip(f"SmolLM2 not prepared: {exc}")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    return tokenizer, model


def _alone(model: object, prompt: list[int], answer: list[int]) -> float:
    """The answer's summed log-probability from a plain forward pass of prompt+answer."""
    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()  # type: ignore[operator]
    logps = torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
    return float(logps.gather(-1, torch.tensor(answer)[:, None]).sum())


def _groups(tokenizer: object) -> list[Group]:
    conversations = [
        ((("user", "What is the capital of France?"),), ["Paris.", "I think it is Lyon, maybe."]),
        (
            (
                ("user", "Name a prime number."),
                ("assistant", "Seven."),
                ("user", "Another one, bigger than ten?"),
            ),
            ["Eleven is prime.", "Twelve."],
        ),
        ((("user", "Say hello politely."),), ["Hello, it is lovely to meet you!", "What."]),
    ]
    groups = []
    for messages, answers in conversations:
        prompt = encode_prompt(tokenizer, messages, "")
        encoded = [encode_answer_ids(tokenizer, a) for a in answers]
        groups.append(fit_group(prompt, encoded, max_length=256))
    return groups


def test_shared_prompt_and_packed_rows_equal_separate_sequences(smollm2: tuple) -> None:
    tokenizer, model = smollm2
    groups = _groups(tokenizer)
    expected = torch.tensor(
        [[_alone(model, g.prompt, a) for a in g.answers] for g in groups], dtype=torch.float32
    )
    one_group_per_row = group_rows(groups, [[i] for i in range(len(groups))], pad_token_id=0)
    all_in_one_row = group_rows(groups, [list(range(len(groups)))], pad_token_id=0)
    assert all_in_one_row.input_ids.shape[0] == 1
    with torch.no_grad():
        unpacked = answer_logprobs(AnswerScorer(model), one_group_per_row)
        packed = answer_logprobs(AnswerScorer(model), all_in_one_row)
    assert unpacked.shape == (3, 2)
    torch.testing.assert_close(unpacked, expected, atol=2e-3, rtol=1e-4)
    torch.testing.assert_close(packed, expected, atol=2e-3, rtol=1e-4)
    # and the answers differ, so equality is not trivially true
    assert float((expected[:, 0] - expected[:, 1]).abs().min()) > 0.1


def test_an_empty_answer_scores_zero_and_leaves_the_others_in_its_row_right(
    smollm2: tuple,
) -> None:
    # a tokenizer without an EOS token gives an empty answer no tokens at all
    tokenizer, model = smollm2
    groups = _groups(tokenizer)
    first = groups[0]
    groups[0] = Group(first.prompt, ([], first.answers[1]), False)
    expected = [[_alone(model, g.prompt, a) if a else 0.0 for a in g.answers] for g in groups]
    with torch.no_grad():
        packed = answer_logprobs(
            AnswerScorer(model), group_rows(groups, [list(range(len(groups)))], pad_token_id=0)
        )
    torch.testing.assert_close(packed, torch.tensor(expected), atol=2e-3, rtol=1e-4)


def test_packing_fills_rows_without_exceeding_capacity(smollm2: tuple) -> None:
    tokenizer, _ = smollm2
    groups = _groups(tokenizer) * 4
    capacity = max(g.width for g in groups) * 2
    layout = pack_groups(groups, capacity)
    assert sorted(i for row in layout for i in row) == list(range(len(groups)))
    assert all(sum(groups[i].width for i in row) <= capacity for row in layout)
    assert len(layout) < len(groups)
    rows = group_rows(groups, layout, pad_token_id=0)
    assert rows.real_tokens == sum(g.tokens for g in groups)


def test_long_prompts_lose_their_start_never_the_answer() -> None:
    group = fit_group(list(range(100)), [[1, 2, 3], [4, 5]], max_length=20)
    assert group.truncated
    assert group.prompt == list(range(83, 100))
    assert group.answers == ([1, 2, 3], [4, 5])
    fits = fit_group(list(range(10)), [[1, 2]], max_length=20)
    assert not fits.truncated and fits.prompt == list(range(10))
    # an answer longer than the budget keeps one prompt token and loses its end
    huge = fit_group(list(range(10)), [list(range(50))], max_length=20)
    assert huge.truncated and huge.prompt == [9] and huge.answers[0] == list(range(19))
