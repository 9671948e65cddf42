"""What approving a case does, for each kind: one explicit table.

``cases.approve`` runs the kind's effect inside the approval's transaction after every check has passed;
raising (a ``CaseError`` for a refused logic check) undoes the approval with it. A kind missing here is
refused at approval rather than approved with nothing done, and the table must name every kind of case.
"""

from __future__ import annotations

from backoffice.services import certificates, moves
from backoffice.services.cases import KINDS, ApprovalEffect

APPROVAL_EFFECTS: dict[str, ApprovalEffect] = {
    "move_out": moves.approve_move_out,
    "move_in_reservation": moves.approve_move_in_reservation,
    "in_city_reservation": moves.approve_in_city_reservation,
    "certificate": certificates.issue_on_approval,
}
if set(APPROVAL_EFFECTS) != set(KINDS):  # a new kind without its effect stops the start
    raise RuntimeError(f"approval effects and case kinds differ: {sorted(set(APPROVAL_EFFECTS) ^ set(KINDS))}")
