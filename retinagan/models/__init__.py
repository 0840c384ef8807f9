from retinagan.models.registry import build_model, config_class, list_models, register_model

__all__ = ["build_model", "config_class", "list_models", "register_model"]
