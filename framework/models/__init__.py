"""Backbones cut into stages (conv1..conv5, or embed + block1..blockN), classification heads,
and weight loading."""
from .backbone import STAGES, Backbone, BackboneMeta, BackboneRequest, Tokens, columnar_stages, sequential
from .classifier import Classifier, build_model, count_params, feature_shape, is_norm
from .heads import HEADS, LinearHead, MlpHead, TokenPool, build_head, token_head

__all__ = ["STAGES", "Backbone", "BackboneMeta", "BackboneRequest", "Classifier", "HEADS", "count_params", "LinearHead",
           "MlpHead", "TokenPool", "Tokens", "build_head", "build_model", "columnar_stages", "feature_shape",
           "is_norm", "sequential", "token_head"]
