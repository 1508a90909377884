"""The PII types voiceloop finds, by the names Presidio and the ``<TYPE>`` placeholders use."""

PERSON = "PERSON"
PHONE = "PHONE_NUMBER"
CARD = "CREDIT_CARD"
ACCOUNT = "ACCOUNT_NUMBER"  # account, order, policy, reference, customer numbers
SSN = "US_SSN"
PIN = "PIN"  # PINs, passcodes, verification and security codes, CVVs
DOB = "DATE_OF_BIRTH"
ZIP = "ZIP_CODE"
ADDRESS = "STREET_ADDRESS"
EMAIL = "EMAIL_ADDRESS"
DIGITS = "DIGIT_STRING"  # a long digit string with no context saying what it is
