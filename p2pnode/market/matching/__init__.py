"""Sans-IO matching core: BID against ASK, indexed."""
