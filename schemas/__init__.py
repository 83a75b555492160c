"""Avro contracts (``schemas/avro/*.avsc``) and the single-object codec."""

from schemas.codec import Codec, fingerprint64

__all__ = ["Codec", "fingerprint64"]
