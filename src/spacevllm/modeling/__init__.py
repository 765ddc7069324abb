"""SpaceVLLM model: config / processor / model split (transformers' conventions)."""

from transformers import AutoConfig, AutoModelForImageTextToText

from spacevllm.modeling.configuration import SpaceVLLMConfig
from spacevllm.modeling.modeling_spacevllm import SpaceVLLMForConditionalGeneration, SpaceVLLMOutput
from spacevllm.modeling.processing import SpaceVLLMProcessor

__all__ = ["SpaceVLLMConfig", "SpaceVLLMForConditionalGeneration", "SpaceVLLMOutput", "SpaceVLLMProcessor"]


def _register_auto_classes() -> None:
    """Let transformers' Auto classes resolve ``model_type: spacevllm`` checkpoints."""
    AutoConfig.register("spacevllm", SpaceVLLMConfig, exist_ok=True)
    AutoModelForImageTextToText.register(SpaceVLLMConfig, SpaceVLLMForConditionalGeneration, exist_ok=True)


_register_auto_classes()
