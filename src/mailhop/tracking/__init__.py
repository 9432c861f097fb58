"""Message tracking (Exchange's Get-MessageTrackingLog) and SMTP protocol logs."""
