// librdkafka wrapper: producer, consumer, admin.
