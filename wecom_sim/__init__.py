"""A wire-compatible simulator of the WeCom server API. It stands for Tencent's side: its own tables,
its own callback crypto, reached by the CRM only over HTTP."""
