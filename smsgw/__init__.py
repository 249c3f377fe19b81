"""smsgw: an SMS and USSD gateway for municipal services in Oman."""

__version__ = "0.1.0"
