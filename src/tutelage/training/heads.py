"""A BERT reward model that reads the mean of its token vectors, not the [CLS] token.

all-MiniLM-L6-v2 was trained as a sentence encoder with mean pooling. With dropout on
and one epoch a head on the mean learned preferences better than one on [CLS] (64.3% vs
62.4% held-out on HH-RLHF helpful-base); with dropout off and two epochs it did worse
(61.6% vs 66.5%), so it is an option (`RewardConfig.pooling = "mean"`), not the default.
transformers' BERT head offers only [CLS] pooling, so this subclass swaps the pooling
and keeps every weight name, so a MiniLM checkpoint loads into it unchanged.

Saved folders name this file in their `auto_map`, and carry a copy of it, so plain
transformers loads them with ``trust_remote_code=True``; importing `tutelage.training`
registers the class so that no flag is needed. The file imports only torch and
transformers for that reason.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
)
from transformers.modeling_outputs import SequenceClassifierOutput

__all__ = ["MeanPooledBertConfig", "MeanPooledBertForSequenceClassification"]


class MeanPooledBertConfig(BertConfig):  # type: ignore[no-untyped-call]
    model_type = "tutelage_mean_pooled_bert"


class MeanPooledBertForSequenceClassification(BertForSequenceClassification):  # type: ignore[no-untyped-call]
    """`BertForSequenceClassification` whose head reads the attention-masked mean of the
    last hidden states."""

    config_class = MeanPooledBertConfig

    def __init__(self, config: MeanPooledBertConfig) -> None:
        super().__init__(config)
        # the [CLS] pooler goes unused: dropped, so DDP finds no parameter without a gradient
        self.bert.pooler = None

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        hidden = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            return_dict=True,
        ).last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], device=hidden.device)
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(pooled)))


AutoConfig.register(MeanPooledBertConfig.model_type, MeanPooledBertConfig, exist_ok=True)
AutoModelForSequenceClassification.register(
    MeanPooledBertConfig, MeanPooledBertForSequenceClassification, exist_ok=True
)
MeanPooledBertConfig.register_for_auto_class()  # type: ignore[no-untyped-call]
MeanPooledBertForSequenceClassification.register_for_auto_class(  # type: ignore[no-untyped-call]
    "AutoModelForSequenceClassification"
)
