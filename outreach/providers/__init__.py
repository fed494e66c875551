"""Providers: who carries each channel (Twilio SMS and voice, SendGrid email, the outbox).

``base`` holds the contract; ``registry`` maps names to classes and builds them.
"""
