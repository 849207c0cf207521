"""The one signature algorithm MyThoughts tokens may use.

It lives in its own module because both the key handling (JWKs advertise it) and the verifier
(which refuses every other algorithm) need it. Why RS256 rather than anything else is explained in
``mythoughts_auth.verify``.
"""

from typing import Final

ALGORITHM: Final = "RS256"
