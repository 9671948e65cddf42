"""The OpenAPI 3.1 description of the portal API, built from the same schemas the server enforces."""

from __future__ import annotations

from typing import Any

from bridge import reasons
from bridge.messages import APPLICATION_KINDS, DISCLOSURE_ANSWER, REQUEST_KINDS
from portal.api.procedures import OPENAPI_PATHS as SERVICE_PATHS
from portal.schemas import (
    CERTIFICATE,
    CORRECTION,
    DISCLOSURE,
    MOVE,
    SIGNED_APPLICATION,
    SIGNED_WITHDRAWAL,
    SUSPENSION,
    WITHDRAWAL,
)


def _strip(schema: dict[str, Any]) -> dict[str, Any]:
    # Inside an OpenAPI document a component schema carries no $schema of its own.
    return {k: v for k, v in schema.items() if k != "$schema"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR = {"type": "object", "required": ["error"], "properties": {
    "error": {"type": "string"}, "hint": {"type": ["string", "null"]}, "field": {"type": "string"},
    "message": {"type": "string"},
    "pointer": {"type": "string", "description": "the field as a JSON Pointer (RFC 6901) into the request body"},
    "fields": {"type": "array", "items": {"type": "object", "properties": {
        "field": {"type": "string", "description": "dotted path into the application, e.g. movers.1.name"},
        "pointer": {"type": "string", "description": "the same as a JSON Pointer (RFC 6901) into the signed "
                                                     "application, e.g. /movers/1/name; a missing or unexpected "
                                                     "property is named itself"},
        "message": {"type": "string"}}}}}}
NONCE = {"type": "object", "required": ["nonce", "expires_at"], "properties": {
    "nonce": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"},
    "aud": {"type": "string"}, "application": {"type": "object"}, "iat": {"type": "integer"},
    "moveId": {"type": ["string", "null"]}, "parts": {"type": "array", "items": {"type": "object"}}}}
WEB_EID_TOKEN = {"type": "object", "required": ["unverifiedCertificate", "algorithm", "signature", "format"],
                 "properties": {"unverifiedCertificate": {"type": "string"}, "algorithm": {"const": "RS256"},
                                "signature": {"type": "string"}, "format": {"type": "string"},
                                "appVersion": {"type": "string"}}}
REASON_CODE = "A reason of the city's own, as a stable code (null for a clerk's words or none)."
EVENT = {"type": "object", "required": ["status", "at"], "properties": {
    "status": {"type": "string"}, "reason": {"type": ["string", "null"]},
    "reason_code": {"enum": [*reasons.CODES, None], "description": REASON_CODE}, "at": {"type": "string"}}}
APPLICATION = {"type": "object", "required": ["receipt_number", "kind", "status", "history"], "properties": {
    "receipt_number": {"type": "string"},
    "kind": {"enum": [*APPLICATION_KINDS, *REQUEST_KINDS]},
    "status": {"enum": ["submitted", "received", "in_review", "returned", "approved", "completed", "rejected",
                        "withdrawn"]},
    "status_reason": {"type": ["string", "null"], "description": "Why the city returned or kept the application, "
                      "in the request's language (Accept-Language or ?lang=); a clerk's words as typed."},
    "status_reason_code": {"enum": [*reasons.CODES, None], "description": REASON_CODE},
    "municipality_code": {"type": "string"},
    "move_id": {"type": ["string", "null"]}, "submitted_at": {"type": "string"},
    "history": {"type": "array", "items": EVENT},
    "answer": {"oneOf": [{"type": "null"}, {**DISCLOSURE_ANSWER, "description": (
        "a granted disclosure request's answer: the requester's own record (no My Number) and who accessed it "
        "(role and office, never a staff name), when, for which procedure and on which legal basis")}]}}}
_JWS = ("JWS compact, RS256, x5c = [signature certificate]; payload SignedApplication {aud, nonce, iat, moveId, "
        "parts, application} where application is a MoveApplication, CertificateApplication, DisclosureRequest, "
        "CorrectionRequest or SuspensionRequest (iat, moveId and "
        "parts as given by /applications/challenge), or SignedWithdrawal {aud, nonce, iat, application: Withdrawal}")
# Request bodies name their keys in camelCase (as the applications themselves do); the snake_case key of 1.0
# is still read, deprecated, until version 2.
SIGNED = {"type": "object", "oneOf": [{"required": ["signedApplication"]}, {"required": ["signed_application"]}],
          "properties": {
              "signedApplication": {"type": "string", "description": _JWS},
              "signed_application": {"type": "string", "deprecated": True,
                                     "description": "Deprecated since 1.1: the same as signedApplication"},
              "nonce": {"type": "string"}}}
BEARER = [{"bearer": []}]
TOO_LARGE = _json({"type": "object", "required": ["error", "max_bytes"], "properties": {
    "error": {"const": "request_too_large"}, "max_bytes": {"type": "integer"}}},
    "The body is larger than MAX_CONTENT_LENGTH (1 MiB by default); nothing was read")
UNAUTHORIZED = _json(ERROR, "No valid bearer token (missing, expired, signed out, or its card's certificate revoked)")


def document(server_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``server_url``."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Resident e-application portal API", "version": "1.1.0",
                 "description": "Card sign-in (Web eID v2 token) and signed online applications. See docs/api.md."},
        "servers": [{"url": server_url}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {"MoveApplication": _strip(MOVE), "CertificateApplication": _strip(CERTIFICATE),
                        "DisclosureRequest": _strip(DISCLOSURE), "CorrectionRequest": _strip(CORRECTION),
                        "SuspensionRequest": _strip(SUSPENSION), "Withdrawal": _strip(WITHDRAWAL),
                        "SignedApplication": _strip(SIGNED_APPLICATION),
                        "SignedWithdrawal": _strip(SIGNED_WITHDRAWAL), "Application": APPLICATION, "Error": ERROR},
        },
        "paths": {
            **SERVICE_PATHS,
            "/api/v1/auth/challenge": {"post": {
                "summary": "A one-time nonce for card sign-in", "operationId": "authChallenge",
                "responses": {"200": _json(NONCE, "The nonce"), "429": _json(ERROR, "Too many requests")}}},
            "/api/v1/auth/token": {"post": {
                "summary": "Exchange a Web eID v2 token for a bearer token", "operationId": "authToken",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["authToken", "nonce"],
                    "properties": {"authToken": WEB_EID_TOKEN, "nonce": {"type": "string"}}}}}},
                "responses": {
                    "200": _json({"type": "object", "required": ["access_token", "token_type", "expires_in"],
                                  "properties": {"access_token": {"type": "string"}, "token_type": {"const": "Bearer"},
                                                 "expires_in": {"type": "integer"}}}, "A bearer token"),
                    "401": _json(ERROR, "The card or token was refused"), "413": TOO_LARGE,
                    "429": _json(ERROR, "Too many requests")}}},
            "/api/v1/me": {"get": {
                "summary": "The account of the bearer token", "operationId": "me", "security": BEARER,
                "responses": {"200": _json({"type": "object", "required": ["account_id", "linked"], "properties": {
                    "account_id": {"type": "integer"}, "linked": {"type": "boolean"},
                    "name": {"type": ["string", "null"]}}}, "The account"), "401": UNAUTHORIZED}}},
            "/api/v1/identity/challenge": {"post": {
                "summary": "What to sign to link the account to the card holder", "operationId": "identityChallenge",
                "security": BEARER, "responses": {"200": _json(NONCE, "Nonce, audience, application"),
                                                  "401": UNAUTHORIZED}}},
            "/api/v1/identity": {"post": {
                "summary": "Link the account with a signed identity document", "operationId": "identity",
                "security": BEARER,
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["signedApplication"],
                    "properties": {"signedApplication": {"type": "string"}, "nonce": {"type": "string"}}}}}},
                "responses": {"200": _json({"type": "object", "properties": {"linked": {"type": "boolean"},
                                                                            "name": {"type": ["string", "null"]}}},
                                           "Linked"),
                              "400": _json(ERROR, "Malformed request"), "401": _json(ERROR, "Refused"),
                              "409": _json(ERROR, "The account is linked to another person (identity_mismatch)"),
                              "413": TOO_LARGE}}},
            "/api/v1/applications/challenge": {"post": {
                "summary": "A one-time nonce, audience and signing time for the next signed application or "
                           "withdrawal; with {\"application\": …} also its moveId and parts to sign",
                "operationId": "applicationChallenge", "security": BEARER,
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"application": {"type": "object"}}}}}},
                "responses": {"200": _json(NONCE, "Nonce and audience"), "401": UNAUTHORIZED}}},
            "/api/v1/applications": {
                "post": {"summary": "Submit a signed application", "operationId": "submitApplication",
                         "security": BEARER,
                         "requestBody": {"required": True, "content": {"application/json": {"schema": SIGNED}}},
                         "responses": {
                             "202": _json({"type": "object", "required": ["receipt_number", "status", "parts"],
                                           "properties": {"receipt_number": {"type": "string"},
                                                          "status": {"type": "string"},
                                                          "parts": {"type": "array", "items": {"type": "object"}}}},
                                          "Accepted: the receipt number of each part"),
                             "400": _json(ERROR, "Malformed request or refused signature"),
                             "401": UNAUTHORIZED, "413": TOO_LARGE,
                             "422": _json(ERROR, "The application breaks a rule; nothing was stored")}},
                "get": {"summary": "The caller's applications", "operationId": "listApplications",
                        "security": BEARER,
                        "responses": {"200": _json({"type": "object", "required": ["applications"], "properties": {
                            "applications": {"type": "array", "items": APPLICATION}}}, "Applications"),
                            "401": UNAUTHORIZED}}},
            "/api/v1/applications/{receipt}": {"get": {
                "summary": "One of the caller's applications", "operationId": "getApplication", "security": BEARER,
                "parameters": [{"name": "receipt", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json(APPLICATION, "The application"), "401": UNAUTHORIZED,
                              "404": _json(ERROR, "No such application of the caller")}}},
            "/api/v1/applications/{receipt}/withdraw": {"post": {
                "summary": "Withdraw on a signed Withdrawal", "operationId": "withdrawApplication",
                "security": BEARER,
                "parameters": [{"name": "receipt", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": SIGNED}}},
                "responses": {"200": _json(APPLICATION, "Withdrawn"), "400": _json(ERROR, "Malformed or refused"),
                              "401": UNAUTHORIZED, "404": _json(ERROR, "No such application of the caller"),
                              "409": _json(ERROR, "No longer withdrawable"), "413": TOO_LARGE}}},
            # Last, so that a client (or a fuzzer) walking the document in order signs out at the end.
            "/api/v1/auth/sign-out": {"post": {
                "summary": "Sign out: revoke every bearer token of the account, this one included",
                "operationId": "authSignOut", "security": BEARER,
                "responses": {"204": {"description": "Signed out; every token issued so far is refused from now on"},
                              "401": UNAUTHORIZED}}},
        },
    }
