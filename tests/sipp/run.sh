#!/bin/sh
# Run sipp scenarios against a freshly reset `sspr-ivr demo` and check the outcome
# each declares (audit result and reason, REFER target). See run.py for details:
#   tests/sipp/run.sh sspr_reset_rfc4733.xml
exec python3 "$(dirname "$0")/run.py" "$@"
