"""Market surveillance: rules run over every order, amendment, cancel and trade, in inbox
order, beside the engine (``manage.py run_surveillance``).

``feed`` reads what the engine processed, exactly once; ``book`` keeps a copy of the
resting orders; ``rules_trades``, ``rules_prices`` and ``rules_market`` hold the rules
(``params`` their tunable parameters); ``alerts`` turns findings into alerts; ``runner``
puts it together. ``services`` and ``selectors`` are the console's side: the alert
workflow and rule settings. ``scenarios`` generates clean and abusive trading for tests
and demonstrations (``manage.py surveillance_scenarios``).
"""
