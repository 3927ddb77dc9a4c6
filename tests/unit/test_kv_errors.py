"""KV CAS errors: both JetStream codes for a wrong last sequence read as a revision mismatch."""

from __future__ import annotations

import nats.js.errors
import pytest

from cotal_tui.mesh.kv import is_revision_mismatch


def _api_error(err_code: int, description: str) -> nats.js.errors.APIError:
    with pytest.raises(nats.js.errors.APIError) as info:
        nats.js.errors.APIError.from_error(
            {"code": 400, "err_code": err_code, "description": description}
        )
    return info.value


@pytest.mark.parametrize(
    ("err_code", "description"),
    [(10071, "wrong last sequence: 1"), (10164, "wrong last sequence")],
)
def test_wrong_last_sequence_is_a_revision_mismatch(err_code: int, description: str) -> None:
    assert is_revision_mismatch(_api_error(err_code, description))


def test_other_api_errors_are_not() -> None:
    assert not is_revision_mismatch(_api_error(10059, "stream not found"))
    assert not is_revision_mismatch(_api_error(10077, "maximum messages exceeded"))
