"""The contrastive phone/semantic-token reranker."""
