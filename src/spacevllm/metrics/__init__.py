"""Official-protocol metrics: STVG (``stvg``), VTG (``vtg``), REC (``rec``); ``table`` prints them."""
