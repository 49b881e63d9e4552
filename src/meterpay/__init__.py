"""meterpay: prepaid water and electricity for property managers (物业水电预付费系统)."""
