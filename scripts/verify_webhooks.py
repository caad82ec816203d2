#!/usr/bin/env python3
"""Verifies webhook deliveries with the Standard Webhooks reference library.

Usage: WEBHOOK_SECRET=whsec_... verify_webhooks.py '[{"headers": {...}, "body": "..."}, ...]'
Exits 0 when every delivery verifies, 1 (naming the first that does not) otherwise.
"""
import json
import os
import sys

from standardwebhooks.webhooks import Webhook

hook = Webhook(os.environ["WEBHOOK_SECRET"])
for n, item in enumerate(json.loads(sys.argv[1])):
    try:
        hook.verify(item["body"], item["headers"])
    except Exception as e:  # the library raises its own WebhookVerificationError
        print(f"delivery {n} refused: {e}", file=sys.stderr)
        sys.exit(1)
