"""Drift of a tuned model from its base: tracked every round, because proxy rewards can keep rising while
quality falls (reward over-optimisation)."""

from __future__ import annotations


def kl_to_base(tuned, base, tokenizer, pairs: list[dict], device: str, batch_size: int = 16) -> float:
    """Mean per-token KL(tuned || base) over the chosen responses' tokens (prompt tokens excluded)."""
    import torch

    seqs = []
    for p in pairs:
        prompt = tokenizer.apply_chat_template(p["prompt"], add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(p["prompt"] + p["chosen"], tokenize=False)
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if len(ids) > n_prompt:
            seqs.append((ids, n_prompt))
    total, count = 0.0, 0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.inference_mode():
        for start in range(0, len(seqs), batch_size):
            batch = seqs[start : start + batch_size]
            width = max(len(ids) for ids, _ in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            attn = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width - 1), dtype=torch.bool)  # positions predicting a response token
            for j, (x, n_prompt) in enumerate(batch):
                ids[j, : len(x)] = torch.tensor(x)
                attn[j, : len(x)] = 1
                mask[j, n_prompt - 1 : len(x) - 1] = True
            ids, attn, mask = ids.to(device), attn.to(device), mask.to(device)
            lt = torch.log_softmax(tuned(input_ids=ids, attention_mask=attn).logits[:, :-1].float(), -1)
            lb = torch.log_softmax(base(input_ids=ids, attention_mask=attn).logits[:, :-1].float(), -1)
            kl = (lt.exp() * (lt - lb)).sum(-1)
            total += float(kl[mask].sum())
            count += int(mask.sum())
    return total / count if count else 0.0
