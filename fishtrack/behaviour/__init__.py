"""Behaviour stage: kinematics, swim bouts, active/passive states, epochs and protocol phases.

``classify(tracks, cfg, protocol)`` runs the whole stage; the pieces are public for scripts
and for re-scoring. See docs/behaviour.md for the algorithms and every output column.
"""

from fishtrack.behaviour.bouts import BOUT_COLUMNS, detect_bouts
from fishtrack.behaviour.calibrate import CalibrationResult, calibrate, load_labels
from fishtrack.behaviour.classify import OUTPUT_COLUMNS, BehaviourResult, classify, classify_parts
from fishtrack.behaviour.kinematics import KINEMATIC_COLUMNS, kinematics
from fishtrack.behaviour.protocol import assign_phase, load_protocol_log, validate_protocol
from fishtrack.behaviour.states import EPOCH_COLUMNS, STATES, epochs_from_states, label_states

__all__ = [
    "BOUT_COLUMNS",
    "EPOCH_COLUMNS",
    "KINEMATIC_COLUMNS",
    "OUTPUT_COLUMNS",
    "STATES",
    "BehaviourResult",
    "CalibrationResult",
    "assign_phase",
    "calibrate",
    "classify",
    "classify_parts",
    "detect_bouts",
    "epochs_from_states",
    "kinematics",
    "label_states",
    "load_labels",
    "load_protocol_log",
    "validate_protocol",
]
