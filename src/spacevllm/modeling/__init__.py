"""SpaceVLLM model: config / processor / model split (transformers' conventions)."""

from spacevllm.modeling.configuration import SpaceVLLMConfig
from spacevllm.modeling.modeling_spacevllm import SpaceVLLMForConditionalGeneration, SpaceVLLMOutput
from spacevllm.modeling.processing import SpaceVLLMProcessor

__all__ = ["SpaceVLLMConfig", "SpaceVLLMForConditionalGeneration", "SpaceVLLMOutput", "SpaceVLLMProcessor"]
