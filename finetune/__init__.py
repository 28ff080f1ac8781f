"""Finetuning: synthetic chart QA, LLaVA-format data, LoRA training, evaluation, S3 shipping."""
