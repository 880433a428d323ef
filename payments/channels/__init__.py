"""Adapters for the payment channels behind ``payments.ports.PaymentChannel``.

``wechatpay`` speaks WeChat Pay API v3, ``alipay`` the Alipay OpenAPI gateway; ``credentials``
generates and loads the keys both the merchant and the channel simulators need.
"""
