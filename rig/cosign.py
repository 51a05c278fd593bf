"""Signatures and attestations as cosign writes them, made in Python with a fresh ECDSA key
(cosign itself is in none of the package registries this project installs from), and pushed
over the registry API as cosign pushes them.

The format follows cosign's: the simple-signing payload in a layer whose annotation holds the
signature, under the `sha256-<hex>.sig` tag and as an OCI 1.1 referrer; an in-toto statement in
a DSSE envelope under the `sha256-<hex>.att` tag.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from .images import (
    CREATED,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_MANIFEST,
    Blob,
    BuiltManifest,
    PushedImage,
    canonical_json,
    push_small_image,
    put_manifest_tags,
    upload_blobs,
)
from .registry import TestRegistry

COSIGN_SIGNATURE_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
COSIGN_SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
COSIGN_ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class SignedImage:
    """An image with a cosign signature of it, pushed both ways cosign stores one."""

    image: PushedImage
    # The public key (PEM) the signature verifies with.
    public_key: bytes = field(repr=False)
    payload: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    # The manifest under the `sha256-<hex>.sig` tag, and the referrer's (pushed by digest).
    tagged_signature: Blob = field(repr=False)
    referrer: Blob = field(repr=False)
    # What `cosign attest` writes under the `sha256-<hex>.att` tag.
    attestation: Blob = field(repr=False)

    @property
    def signature_tag(self) -> str:
        return self.image.digest.replace(":", "-") + ".sig"

    @property
    def attestation_tag(self) -> str:
        return self.image.digest.replace(":", "-") + ".att"


def build_cosign_signature(
    image: Blob, docker_reference: str, key: Any = None
) -> tuple[bytes, bytes, bytes, BuiltManifest, BuiltManifest]:
    """A cosign signature of `image` with an ECDSA P-256 key (a fresh one by default), as
    cosign signs with a key pair: the public key, the simple-signing payload, the signature
    (DER, SHA-256), and the two manifests that carry them (the `.sig` tag's and the
    referrer's)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = key or ec.generate_private_key(ec.SECP256R1())
    public_key = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": docker_reference},
                "image": {"docker-manifest-digest": image.digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()
    signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    layer = Blob(COSIGN_SIMPLE_SIGNING, payload)
    annotated = layer.descriptor(
        annotations={COSIGN_SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()}
    )
    config = cosign_config(layer)
    tagged = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [annotated],
    }
    empty = Blob(OCI_EMPTY, b"{}")
    referrer = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": COSIGN_SIGNATURE_ARTIFACT,
        "config": empty.descriptor(),
        "layers": [annotated],
        "subject": image.descriptor(),
    }
    return (
        public_key,
        payload,
        signature,
        BuiltManifest(Blob(OCI_MANIFEST, canonical_json(tagged)), (config, layer)),
        BuiltManifest(Blob(OCI_MANIFEST, canonical_json(referrer)), (empty, layer)),
    )


def cosign_config(layer: Blob) -> Blob:
    """The config cosign gives the manifest of a signature or an attestation: an image of one
    layer and no platform, made at the zero time."""
    return Blob(
        OCI_CONFIG,
        canonical_json(
            {
                "architecture": "",
                "config": {},
                "created": COSIGN_ZERO_TIME,
                "history": [{"created": COSIGN_ZERO_TIME}],
                "os": "",
                "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
            }
        ),
    )


def build_cosign_attestation(image: Blob, key: Any) -> BuiltManifest:
    """What `cosign attest` writes for `image`: an in-toto statement about it in a DSSE
    envelope signed with `key`, the one layer of a manifest whose config is cosign's."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    statement = canonical_json(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://cosign.sigstore.dev/attestation/v1",
            "subject": [
                {"name": "image", "digest": {"sha256": image.digest.removeprefix("sha256:")}}
            ],
            "predicate": {"Data": "built by crev's tests", "Timestamp": CREATED},
        }
    )
    payload_type = "application/vnd.in-toto+json"
    # DSSE signs its pre-authentication encoding, not the payload alone.
    signed = b"DSSEv1 %d %s %d %s" % (
        len(payload_type),
        payload_type.encode(),
        len(statement),
        statement,
    )
    envelope = canonical_json(
        {
            "payloadType": payload_type,
            "payload": base64.b64encode(statement).decode(),
            "signatures": [
                {
                    "keyid": "",
                    "sig": base64.b64encode(key.sign(signed, ec.ECDSA(hashes.SHA256()))).decode(),
                }
            ],
        }
    )
    layer = Blob("application/vnd.dsse.envelope.v1+json", envelope)
    config = cosign_config(layer)
    annotated = layer.descriptor(
        annotations={
            "dev.cosignproject.cosign/signature": "",
            "predicateType": "https://cosign.sigstore.dev/attestation/v1",
        }
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [annotated],
    }
    return BuiltManifest(Blob(OCI_MANIFEST, canonical_json(manifest)), (config, layer))


def push_signed_image(
    registry: TestRegistry, name: str = "acme/signed", tag: str = "1"
) -> SignedImage:
    """A small image, a cosign signature and an attestation of it, pushed over the registry
    API as cosign pushes them: under the `sha256-<hex>.sig` and `.att` tags (what a registry
    without a referrers API gets), and the signature as a referrer of the image, by digest."""
    from cryptography.hazmat.primitives.asymmetric import ec

    image = push_small_image(registry, name, tag)
    manifest = Blob(image.media_type, image.manifest)
    key = ec.generate_private_key(ec.SECP256R1())
    public_key, payload, signature, tagged, referrer = build_cosign_signature(
        manifest, f"{registry.host}/{name}", key
    )
    attestation = build_cosign_attestation(manifest, key)
    upload_blobs(registry, name, [*tagged.blobs, *referrer.blobs, *attestation.blobs])
    signed = SignedImage(
        image,
        public_key,
        payload,
        signature,
        tagged.manifest,
        referrer.manifest,
        attestation.manifest,
    )
    put_manifest_tags(registry, name, tagged.manifest, [signed.signature_tag])
    put_manifest_tags(registry, name, attestation.manifest, [signed.attestation_tag])
    put_manifest_tags(registry, name, referrer.manifest, [referrer.manifest.digest])
    return signed
