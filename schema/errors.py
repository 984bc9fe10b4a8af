"""Error policy: our own coded errors pass through; anything unexpected is masked as INTERNAL
with the request id (and logged with its stack trace); validation errors get a code."""

from __future__ import annotations

import logging

from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors

from api.errors import LedgerlineError

log = logging.getLogger("ledgerline.graphql")


def _is_expected(error: GraphQLError) -> bool:
    # no original error: a parse/validation error; a GraphQLError: a variable that failed coercion
    return error.original_error is None or isinstance(error.original_error, (LedgerlineError, GraphQLError))


def _request_id(extension: MaskErrors) -> str | None:
    context = getattr(extension.execution_context, "context", None)
    return getattr(context, "request_id", None)


class ErrorPolicy(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda error: not _is_expected(error), error_message="Internal error")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = _request_id(self)
        original = error.original_error
        log.error(
            "unexpected error in %s",
            ".".join(str(p) for p in error.path or ()),
            exc_info=(type(original), original, original.__traceback__) if original else None,
        )
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL", "requestId": request_id}
        return masked

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        processed = super()._process_errors(errors)
        for error in processed:
            if not isinstance(error.original_error, LedgerlineError) and not (error.extensions or {}).get("code"):
                bad_value = "invalid value" in error.message or error.message.startswith("Variable")
                error.extensions = {
                    **(error.extensions or {}),
                    "code": "BAD_USER_INPUT" if bad_value else "GRAPHQL_VALIDATION_FAILED",
                }
        return processed
