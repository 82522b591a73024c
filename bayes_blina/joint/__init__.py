"""The joint biomarker → CR model's companions: dynamic (landmark) prediction, the two-stage
comparison, P(CR) curves and held-out evaluation. The model itself is
:mod:`bayes_blina.families.joint`."""
from bayes_blina.joint.landmark import LANDMARK_DAYS, landmark_cutoff_h, predict_landmark

__all__ = ["LANDMARK_DAYS", "landmark_cutoff_h", "predict_landmark"]
