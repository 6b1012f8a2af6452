/// SQLSTATE codes the proxy reports itself.
public enum SQLState {
    public static let protocolViolation = "08P01"
    public static let invalidPassword = "28P01"
    public static let invalidAuthorizationSpecification = "28000"
    public static let connectionFailure = "08006"
    public static let sqlClientUnableToEstablishSQLConnection = "08001"
    public static let sqlServerRejectedEstablishmentOfSQLConnection = "08004"
    public static let adminShutdown = "57P01"
    public static let tooManyConnections = "53300"
    public static let invalidCatalogName = "3D000"
    public static let inFailedSQLTransaction = "25P02"
    public static let readOnlySQLTransaction = "25006"
    public static let featureNotSupported = "0A000"
    public static let internalError = "XX000"
    public static let queryCanceled = "57014"
    public static let syntaxError = "42601"
    public static let systemError = "58000"
}
