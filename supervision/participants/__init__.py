"""Participants in the console: the KYC queue, beneficial-owner groups, member fee tiers and
attestors. ``services`` decides and writes; ``selectors`` reads for the pages and the API."""
