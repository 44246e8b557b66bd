"""The WeCom library: the API client and the callback crypto. It imports nothing else of the project."""

from crm.wecom.errors import WeComError

__all__ = ["WeComError"]
