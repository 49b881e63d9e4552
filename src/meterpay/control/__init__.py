"""Control: account supply states, the arrears policy, and (later) the command outbox.

``model`` and ``rules`` are pure: given one utility account's own balance, its
thresholds and the site's arrears policy, they say which supply state the
account is in, when a cut-off is allowed, when a person must decide, and when
supply is restored. Time and the calendar are passed in; nothing here reads a
clock or a database.
"""
