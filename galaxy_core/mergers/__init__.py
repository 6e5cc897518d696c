"""mergers"""
