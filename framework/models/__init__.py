"""Backbones cut into stages conv1..conv5, classification heads, and weight loading."""
from .backbone import STAGES, Backbone, BackboneMeta, BackboneRequest, sequential
from .classifier import Classifier, build_model, feature_shape, is_norm
from .heads import HEADS, LinearHead, MlpHead, build_head

__all__ = ["STAGES", "Backbone", "BackboneMeta", "BackboneRequest", "Classifier", "HEADS", "LinearHead",
           "MlpHead", "build_head", "build_model", "feature_shape", "is_norm", "sequential"]
