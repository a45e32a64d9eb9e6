"""The attacker's view, as runnable tests (issue 10).

test_logins: parallel password guessing and telling existing users from
unknown ones (by the Argon2 work done, not by the clock); test_audit_forgery:
a record appended with database access but without the key; web/: bad
parameters answered 400 with the security headers, and the parallel login
race through the application. Each was a finding before it was fixed.
"""
