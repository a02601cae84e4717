"""Custom search attributes ARGUS sets on its workflows, so incidents can be listed and
filtered in the Temporal Web UI (e.g. `IncidentService="payments" AND IncidentStatus="awaiting_approval"`).
They must be registered on the namespace before use; `argus up` and the tests do it."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

SERVICE = SearchAttributeKey.for_keyword("IncidentService")
SEVERITY = SearchAttributeKey.for_keyword("IncidentSeverity")
STATUS = SearchAttributeKey.for_keyword("IncidentStatus")
ENVIRONMENT = SearchAttributeKey.for_keyword("IncidentEnvironment")
FINGERPRINT = SearchAttributeKey.for_keyword("IncidentFingerprint")
NUMBER = SearchAttributeKey.for_keyword("IncidentNumber")
ROOT_CAUSE = SearchAttributeKey.for_keyword("IncidentRootCause")
BACKFILL = SearchAttributeKey.for_bool("IncidentBackfill")

ALL = [SERVICE, SEVERITY, STATUS, ENVIRONMENT, FINGERPRINT, NUMBER, ROOT_CAUSE, BACKFILL]
